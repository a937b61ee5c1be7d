# The IRN boundary walk of "Our + RW (IRN boundary)" on the seeds of Our*
# (stages 1+2) instead of Our (stage 3): the same network, labels rule
# (the parent's seed threshold +- 0.1), schedule and walk; only the parent
# differs. Why the row exists (issue #19, dev seed 0): the confident labels
# made from the stage-3 seeds are 55.2 % precise on foreground pixels
# (coverage 40.7 %, negative pairs 70.0 %), those made from Our*'s 71.3 %
# (coverage 77.6 %, negative pairs 75.9 %;
# `tools/make_affinity_labels.py ... --gt-dir`), so the walk after stage 3
# learns from worse labels than the model stage 3 started from. This row
# measures the walk where its labels are good; the paper's chain stays the
# "Our + RW" rows.
_base_ = ['./irn-boundary_effl0_1xb16-300it_demo-128x128.py']
wsss_row = dict(
    table='camguide',
    name='Our* (stages 1+2) + RW (IRN boundary)',
    parent='configs/camguide/'
    'camguide-stage2_effl0_teacher-effl2_1xb32-200it_demo-128x128.py',
    refine='random_walk',
    change=['*'],
    extra_images=16000 + 4800)
