# Ablation (Table V, "Our-dagger"): all stages with morphology, without
# the window local consistency loss.
_base_ = ['./camguide-stage3_effl0_1xb32-300it_demo-128x128.py']
model = dict(loss_loc=None)
