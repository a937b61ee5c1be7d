# Copyright (c) mmwsss contributors.
from .cam_visualization_hook import CAMVisualizationHook
from .channels_last_hook import ChannelsLastHook, enable_channels_last
from .influence_hook import InfluenceHook, preserved_rng_state
from .loss_plateau_hook import ReduceLROnLossPlateauHook
from .rng_state_hook import RNGStateHook
from .safe_checkpoint_hook import SafeCheckpointHook
from .stage_switch_hook import StageSwitchHook, restart_train_dataloader
from .target_quality_hook import TargetQualityHook

__all__ = [
    'CAMVisualizationHook', 'ChannelsLastHook',
    'InfluenceHook', 'ReduceLROnLossPlateauHook', 'RNGStateHook',
    'SafeCheckpointHook', 'StageSwitchHook', 'TargetQualityHook',
    'enable_channels_last', 'preserved_rng_state', 'restart_train_dataloader'
]
