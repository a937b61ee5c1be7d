# Ablation (Table V, "Our**"): all stages without morphological operations
# (no closing of the DenseCRF targets) and without local consistency.
_base_ = ['./camguide-stage3-noloc_effl0_1xb32-300it_demo-128x128.py']
model = dict(heuristic_targets=dict(close_kernel=1))
