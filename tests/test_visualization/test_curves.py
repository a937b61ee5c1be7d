# Copyright (c) mmwsss contributors.
"""scalars.json reading and the curve plot."""
import io
import json
import os

import pytest
from PIL import Image

from mmwsss.visualization.curves import find_scalars, plot_curves, read_scalars


def write_run(root, stamp, lines):
    d = root / stamp / 'vis_data'
    os.makedirs(d)
    (d / 'scalars.json').write_text('\n'.join(json.dumps(x)
                                              for x in lines) + '\n')
    return d / 'scalars.json'


def test_read_and_find(tmp_path):
    old = write_run(tmp_path, '20260101_000000', [dict(loss=9.0, step=1)])
    new = write_run(tmp_path, '20260102_000000', [
        dict(loss=2.0, lr=0.1, iter=10, step=10),
        dict(mIoU=41.5, step=10),
        dict(loss=1.5, lr=0.05, iter=20, step=20, flag=True),
        dict(note='text', step=20),
    ])
    assert find_scalars(str(tmp_path)) == str(new)  # newest run
    assert find_scalars(str(old)) == str(old)
    s = read_scalars(str(tmp_path / '20260102_000000'))
    assert s['loss'] == ([10, 20], [2.0, 1.5])
    assert s['mIoU'] == ([10], [41.5])
    assert set(s) == {'loss', 'lr', 'mIoU'}
    with pytest.raises(FileNotFoundError, match='no scalars.json in'):
        find_scalars(str(tmp_path / 'missing'))
    bad = write_run(tmp_path, 'bad', [dict(loss=1.0, step=1)])
    bad.write_text(bad.read_text() + '{"loss": 1.0, "st')
    with pytest.raises(ValueError, match=r'scalars\.json line 2'):
        read_scalars(str(bad))


def test_plot(tmp_path):
    a = {'loss': ([1, 2, 3], [3.0, 2.0, 1.0]), 'lr': ([1, 2], [0.1, 0.2])}
    b = {'loss': ([1, 2], [2.5, 2.4])}
    png = plot_curves([('a', a), ('b', b)], figsize=(4, 2), dpi=50)
    with Image.open(io.BytesIO(png)) as im:
        assert im.size == (200, 100)
    png = plot_curves([('a', a)], ['loss', 'lr'])
    assert png[:4] == b'\x89PNG'
    with pytest.raises(KeyError, match="known: \\['loss', 'lr'\\]"):
        plot_curves([('a', a)], ['mIoU'])
