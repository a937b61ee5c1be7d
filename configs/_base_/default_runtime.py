default_scope = 'mmwsss'
env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)
# Where pictures and scalars go: LocalVisBackend writes
# <work_dir>/<timestamp>/vis_data/{vis_image,scalars.json}; add
# dict(type='TensorboardVisBackend') for TensorBoard (pip install
# tensorboard). WSSSVisualizer is mmseg's SegLocalVisualizer plus CAMs
# (docs/en/user_guides/visualization.md).
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(
    type='WSSSVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(by_epoch=False)
log_level = 'INFO'
load_from = None
resume = False
# Writes checkpoints that load with torch.load(weights_only=True), and
# stores the random generator states in them for an exact resume.
custom_hooks = [dict(type='SafeCheckpointHook'), dict(type='RNGStateHook')]
