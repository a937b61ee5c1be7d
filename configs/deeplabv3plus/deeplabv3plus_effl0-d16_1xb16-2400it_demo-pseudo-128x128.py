# Final WSSS stage of the results bed (`make results`, 3,000 demo train
# images): the 800-iteration demo model trained 3x longer. On the demo bed's
# scenes the fully supervised model still gained at 1,600 iterations
# (docs/en/notes/demo_calibration.md, settings D and E); `make demo` keeps
# the 800-iteration config on 1,000 images to stay within 30 minutes.
# The warm-up is scaled with the schedule (40 / 800 -> 120 / 2,400), as
# `--seg-iters 2400` does in `tools/run_demo.py`.
_base_ = ['./deeplabv3plus_effl0-d16_1xb16-800it_demo-pseudo-128x128.py']
max_iters = 2400
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, begin=0, end=120, by_epoch=False),
    dict(
        type='PolyLR',
        eta_min=0.0,
        power=0.9,
        begin=120,
        end=max_iters,
        by_epoch=False)
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(checkpoint=dict(interval=400))
