# Copyright (c) mmwsss contributors.
"""The VOC colour map against the colours PASCAL VOC publishes."""
from mmwsss.utils.palette import voc_color_map


def test_voc_colours():
    cmap = voc_color_map()
    assert len(cmap) == 256
    # VOC2012 devkit: background, aeroplane, bicycle, bird, ... tvmonitor
    assert cmap[:5] == [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0],
                        [0, 0, 128]]
    assert cmap[15] == [192, 128, 128]  # person
    assert cmap[20] == [0, 64, 128]  # tvmonitor
    assert cmap[255] == [224, 224, 192]  # the void / ignore colour
    assert len({tuple(c) for c in cmap}) == 256
