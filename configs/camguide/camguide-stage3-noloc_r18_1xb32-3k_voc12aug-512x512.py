# Table V "Our-dagger": all stages with morphology, no local consistency.
_base_ = ['./camguide-stage3_r18_1xb32-3k_voc12aug-512x512.py']
model = dict(loss_loc=None)
