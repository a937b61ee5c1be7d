# IG-CAM item-7 search (dev seeds only; `--search`): the Full row with half
# of the 500 iterations in the coarse-localisation stage (switches at 250
# and 375 instead of 167 and 334): the paper moves on when the validation
# loss plateaus, which on a short schedule comes late.
_base_ = ['../../igcam/igcam-ablation-full_effl0-d16_1xb32-500it_demo-128x128.py']
custom_hooks = [
    dict(type='SafeCheckpointHook'),
    dict(type='RNGStateHook'),
    {{_base_.influence_hook}},
    {{_base_.quality_hook}},
    dict(
        type='StageSwitchHook',
        switch_at=[250, 375],
        stages={{_base_.progressive_stages}}),
]
wsss_row = dict(
    table='igcam',
    name='Full, stages 250 / 125 / 125',
    parent='configs/igcam/igcam-ablation-full_effl0-d16_1xb32-500it_demo-128x128.py',
    change=['custom_hooks.4.switch_at'])
