# Control row for the walk: the IRN boundary walk of "Our* (stages 1+2) + RW
# (IRN boundary)" on the CAM baseline's seeds, the classification-only
# student CamGuide starts from. The same network, labels rule (the parent's
# seed threshold +- 0.1), schedule and walk; only the parent differs. With
# it the table separates what the walk adds (this row against the
# baseline) from what CamGuide's distillation adds under the walk (the
# Our* row against this one).
_base_ = ['./irn-boundary_effl0_1xb16-300it_demo-128x128.py']
wsss_row = dict(
    table='camguide',
    name='Baseline (CAM) + RW (IRN boundary), control',
    parent='configs/cam/cam_effl0-d16_1xb32-500it_demo-128x128.py',
    refine='random_walk',
    change=['*'],
    extra_images=4800)
