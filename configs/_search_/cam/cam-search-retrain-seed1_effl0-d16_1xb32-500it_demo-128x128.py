# Retraining noise (dev seeds only; `--search`): the CAM baseline trained
# again with another random stream (initialisation of the head, sampling
# order, augmentation). Its paired difference to the baseline is what one
# retraining moves the seeds by, the yardstick for a row's difference.
_base_ = ['../../cam/cam_effl0-d16_1xb32-500it_demo-128x128.py']
randomness = dict(seed=1)
wsss_row = dict(
    table='baseline',
    name='Baseline (CAM), randomness seed 1',
    parent='configs/cam/cam_effl0-d16_1xb32-500it_demo-128x128.py',
    change=['randomness.seed'])
