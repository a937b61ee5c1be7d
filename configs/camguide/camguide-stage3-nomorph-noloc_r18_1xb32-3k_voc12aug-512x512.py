# Table V "Our**": all stages without morphology (no closing of the
# DenseCRF targets) and without local consistency.
_base_ = ['./camguide-stage3-noloc_r18_1xb32-3k_voc12aug-512x512.py']
model = dict(heuristic_targets=dict(close_kernel=1))
