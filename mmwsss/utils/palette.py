# Copyright (c) mmwsss contributors.
"""The PASCAL VOC colour map, one implementation for every palette."""
from typing import List


def voc_color_map(num: int = 256) -> List[List[int]]:
    """PASCAL VOC's bit-interleaved colour map (its ``labelcolormap``).

    Colour ``i`` spreads the bits of ``i`` over the high bits of R, G and B:
    index 0 is black, then ``[128, 0, 0]``, ``[0, 128, 0]``, ...; the first
    21 entries are the VOC colours and index 255 is VOC's ignore colour
    ``(224, 224, 192)``. Deterministic and distinct for ``num <= 256``.

    Args:
        num (int): Number of colours. Defaults to 256.

    Returns:
        list[list[int]]: ``num`` RGB triplets.
    """
    cmap = []
    for i in range(num):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        cmap.append([r, g, b])
    return cmap
