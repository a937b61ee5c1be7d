# Copyright (c) mmwsss contributors.
"""WSSSFolderDataset: label tables by class name, suffixes, bad inputs."""
import json
import os
import shutil

import numpy as np
import pytest
from mmengine.registry import init_default_scope

from mmwsss.datasets import LabelFileError, WSSSFolderDataset
from mmwsss.datasets.folder import list_images, read_label_table
from mmwsss.datasets.shapes_folder import SHAPES_CLASSES, write_shapes_folder
from mmwsss.registry import DATASETS

CLASSES = SHAPES_CLASSES


@pytest.fixture(scope='module')
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp('folder') / 'shapes'
    info = write_shapes_folder(
        str(root), num_images=8, img_size=24, num_masks=3, num_new=1)
    return root, info


@pytest.fixture
def copy(shapes, tmp_path):
    root = tmp_path / 'data'
    shutil.copytree(shapes[0], root)
    return root


def build(root, label_file='labels.csv', classes=CLASSES, **kwargs):
    prefix = kwargs.pop('data_prefix', dict(img_path='images'))
    return WSSSFolderDataset(
        data_root=str(root),
        data_prefix=prefix,
        label_file=label_file,
        metainfo=None if classes is None else dict(classes=classes),
        **kwargs)


def expected(info):
    return [(f'{info["root"]}/images/{n}', info['labels'][n])
            for n in info['images']]


def test_list_form_every_suffix(shapes):
    root, info = shapes
    ds = build(root)
    got = [(ds.get_data_info(i)['img_path'], ds.get_data_info(i)['img_labels'])
           for i in range(len(ds))]
    assert got == expected(info)
    suffixes = {os.path.splitext(p)[1] for p, _ in got}
    assert suffixes == {'.jpg', '.png', '.JPEG', '.bmp', '.webp', '.tif'}
    # classes from the config only: no "not a subset" error, no label map,
    # VOC colours by default
    assert ds.metainfo['classes'] == CLASSES
    assert ds.label_map is None
    assert ds.metainfo['palette'][:2] == [[0, 0, 0], [128, 0, 0]]
    assert 'seg_map_path' not in ds.get_data_info(0)
    # every image loads through the pipeline-free path
    for p, _ in got:
        assert list_images(p) == [p]


def test_one_hot_csv_json_and_stems_give_the_same(shapes, tmp_path):
    root, info = shapes
    ref = expected(info)
    one_hot = ['image,' + ','.join(CLASSES[1:])]
    records, mapping = [], {}
    for name in info['images']:
        labs = info['labels'][name]
        one_hot.append(
            os.path.splitext(name)[0] + ',' +
            ','.join('1' if c in labs else '0' for c in range(1, 4)))
        records.append(dict(image=name, labels=[CLASSES[c] for c in labs]))
        mapping[name] = [CLASSES[c] for c in labs]
    files = {
        'onehot.csv': '\n'.join(one_hot) + '\n',
        'records.json': json.dumps(records),
        'mapping.json': json.dumps(mapping)
    }
    for fname, text in files.items():
        (tmp_path / fname).write_text(text)
        ds = build(root, str(tmp_path / fname))
        got = [(ds.get_data_info(i)['img_path'],
                ds.get_data_info(i)['img_labels']) for i in range(len(ds))]
        assert got == ref, fname


def test_masks_required_or_subset(shapes):
    root, info = shapes
    ds = build(
        root,
        data_prefix=dict(img_path='images', seg_map_path='masks'),
        only_with_masks=True)
    assert len(ds) == 3
    assert ds.get_data_info(0)['seg_map_path'].endswith('masks/shape_000.png')
    with pytest.raises(
            LabelFileError,
            match=r'labels\.csv line 5: mask .*shape_003\.png'):
        build(root, data_prefix=dict(img_path='images', seg_map_path='masks'))


def test_registry_and_lazy_metainfo(shapes):
    init_default_scope('mmwsss')
    root, _ = shapes
    ds = DATASETS.build(
        dict(
            type='WSSSFolderDataset',
            data_root=str(root),
            data_prefix=dict(img_path='images'),
            label_file='labels.csv',
            metainfo=dict(classes=CLASSES, palette=[[1, 2, 3]] * len(CLASSES)),
            lazy_init=True))
    assert ds.metainfo['palette'][0] == [1, 2, 3]
    assert not ds._fully_initialized


def test_subfolders_and_unlisted_images(copy, capsys):
    os.makedirs(copy / 'images' / 'sub')
    shutil.copy(copy / 'images' / 'shape_000.jpg',
                copy / 'images' / 'sub' / 'other.JPG')
    (copy / 'l.csv').write_text('image,labels\nsub/other,circle\n')
    ds = build(copy, 'l.csv')
    assert ds.get_data_info(0)['img_path'].endswith('images/sub/other.JPG')


# ----------------------------------------------------------------------
# bad input: one row each, the error names the file and the row
BAD_ROWS = [
    ('shape_000.jpg,circle;dgo', r'bad\.csv line 2 names the unknown class '
     r'"dgo"'),
    ('shape_000.jpg,sqare', r'bad\.csv line 2 .*did you mean "square"'),
    ('shape_000.jpg,background', r'bad\.csv line 2 names the background'),
    ('missing.jpg,circle', r'bad\.csv line 2: image "missing\.jpg" not found'),
    ('missing,circle', r'bad\.csv line 2: image "missing" not found'),
    ('corrupt.jpg,circle', r'bad\.csv line 2: image .*corrupt\.jpg cannot '
     r'be decoded'),
    ('empty.png,circle', r'bad\.csv line 2: image .*empty\.png empty file'),
    ('shape_000.jpg,circle\nshape_000.jpg,square',
     r'bad\.csv line 3: image "shape_000\.jpg" is listed again \(first at '
     r'.*bad\.csv line 2\)'),
    ('shape_000.jpg,circle\ndup/shape_000.png,square',
     r'bad\.csv line 3: .*same file stem "shape_000"'),
    ('shape_000.jpg,', r'bad\.csv line 2: empty label set'),
    ('shape_000.jpg,circle,square', r'bad\.csv line 2: 3 cells'),
    ('shape_000.gif,circle', r'bad\.csv line 2: .*unknown image suffix'),
    ('../x.jpg,circle', r'bad\.csv line 2: .*inside the image folder'),
]


@pytest.mark.parametrize('row,match', BAD_ROWS)
def test_bad_rows(copy, row, match):
    (copy / 'images' / 'corrupt.jpg').write_bytes(b'not a jpeg at all' * 9)
    (copy / 'images' / 'empty.png').write_bytes(b'')
    os.makedirs(copy / 'images' / 'dup')
    shutil.copy(copy / 'images' / 'shape_001.png',
                copy / 'images' / 'dup' / 'shape_000.png')
    (copy / 'bad.csv').write_text('image,labels\n' + row + '\n')
    with pytest.raises(LabelFileError, match=match):
        build(copy, 'bad.csv')


def test_ambiguous_stem(copy):
    shutil.copy(copy / 'images' / 'shape_001.png',
                copy / 'images' / 'shape_000.png')
    (copy / 'bad.csv').write_text('image,labels\nshape_000,circle\n')
    with pytest.raises(LabelFileError, match='matches several files'):
        build(copy, 'bad.csv')


def test_bad_headers_cells_and_json(copy):
    cases = {
        'h1.csv': ('file,cat\nshape_000.jpg,1\n',
                   r'h1\.csv line 1: column "cat" is a class missing from '
                   'the config'),
        'h2.csv': ('picture,labels\n', r'h2\.csv line 1: the header'),
        'h3.csv': ('image,circle\nshape_000.jpg,maybe\n',
                   r'h3\.csv line 2: cell "maybe" of class "circle"'),
        'h4.csv': ('image,background\n', r'h4\.csv line 1: column '
                   '"background" is the background'),
        'h5.csv': ('', r'h5\.csv is empty'),
        'j1.json': ('{"shape_000.jpg": "circle"}', r'j1\.json entry 1 '
                    r'\("shape_000\.jpg"\): labels must be a list'),
        'j2.json': ('[{"labels": []}]', r'j2\.json entry 1: expected'),
        'j3.json': ('{"a": [1', r'j3\.json is not valid JSON'),
        'x.xlsx': ('', r'unknown format "\.xlsx"'),
    }
    for name, (text, match) in cases.items():
        (copy / name).write_text(text)
        with pytest.raises(LabelFileError, match=match):
            build(copy, name)
    with pytest.raises(FileNotFoundError, match='nope.csv'):
        build(copy, 'nope.csv')


def test_bad_class_declarations(copy):
    with pytest.raises(LabelFileError, match='has no classes: declare'):
        build(copy, classes=None)
    with pytest.raises(LabelFileError, match='start with the background'):
        build(copy, classes=('circle', 'square'))
    with pytest.raises(LabelFileError, match=r"names \['circle'\] more"):
        build(copy, classes=('background', 'circle', 'circle'))
    with pytest.raises(LabelFileError, match='2 palette colours'):
        WSSSFolderDataset(
            data_root=str(copy),
            data_prefix=dict(img_path='images'),
            label_file='labels.csv',
            metainfo=dict(classes=CLASSES, palette=[[0, 0, 0]] * 2))
    # a class of the table that the config does not declare
    with pytest.raises(
            LabelFileError,
            match=r'labels\.csv line \d+ names the unknown class '
            '"triangle"'):
        build(copy, classes=('background', 'circle', 'square'))


def test_empty_labels_allowed_and_exists_check(copy):
    (copy / 'e.csv').write_text('image,labels\nshape_000.jpg,\n')
    ds = build(copy, 'e.csv', allow_empty_labels=True)
    assert ds.get_data_info(0)['img_labels'] == []
    (copy / 'images' / 'corrupt.jpg').write_bytes(b'garbage' * 20)
    (copy / 'c.csv').write_text('image,labels\ncorrupt.jpg,circle\n')
    # 'exists' does not decode (faster for large folders)
    assert len(build(copy, 'c.csv', check_images='exists')) == 1


def test_read_label_table_rows(copy):
    rows = read_label_table(str(copy / 'labels.csv'), CLASSES)
    assert rows[0][0].endswith('labels.csv line 2')
    assert rows[0][1] == 'shape_000.jpg'
    assert all(isinstance(c, int) for _, _, labs in rows for c in labs)
    assert np.all([labs == sorted(labs) for _, _, labs in rows])
