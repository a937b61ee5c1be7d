# Copyright (c) mmwsss contributors.
from .drawing import (HEADER_H, LEGEND_H, cam_heatmap, cam_overlay, colourise,
                      encode_png, make_grid, save_png, voc_palette)
from .wsss_visualizer import WSSSVisualizer

__all__ = [
    'WSSSVisualizer', 'HEADER_H', 'LEGEND_H', 'cam_heatmap', 'cam_overlay',
    'colourise', 'encode_png', 'make_grid', 'save_png', 'voc_palette'
]
