# Copyright (c) mmwsss contributors.
"""model-index.yml and the configs' metafile.yaml / README.md files.

Every config is listed in a metafile, every metafile entry points to an
existing config, the demo numbers are those of the ``results.json`` that
the entry names (``Metadata.Results Source``, a file under
``docs/en/_static/results/``) and the entries that were never trained
carry no numbers.
"""
import json
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = 'docs/en/_static/results/'
NOT_TRAINED = 'not yet trained'


def config_files() -> set:
    """Model configs: not the shared ``_base_`` pieces nor the dev-seed
    hyper-parameter variants of ``_search_`` (no models of their own)."""
    return {
        str(p.relative_to(ROOT))
        for p in (ROOT / 'configs').rglob('*.py')
        if '_base_' not in p.parts and '_search_' not in p.parts
    }


def metafiles() -> list:
    index = yaml.safe_load((ROOT / 'model-index.yml').read_text())
    return index['Import']


def models() -> list:
    out = []
    for rel in metafiles():
        meta = yaml.safe_load((ROOT / rel).read_text())
        for m in meta['Models']:
            out.append((rel, m))
    return out


def test_model_index_imports_every_metafile():
    listed = sorted(metafiles())
    on_disk = sorted(
        str(p.relative_to(ROOT))
        for p in (ROOT / 'configs').glob('*/metafile.yaml'))
    assert listed == on_disk
    assert len(set(listed)) == len(listed)


def test_every_config_folder_has_readme_and_metafile():
    folders = {Path(c).parent for c in config_files()}
    for folder in folders:
        assert (ROOT / folder / 'README.md').is_file(), folder
        assert (ROOT / folder / 'metafile.yaml').is_file(), folder


def test_every_config_is_listed_once_and_exists():
    listed = [m['Config'] for _, m in models()]
    assert len(listed) == len(set(listed)), 'a config is listed twice'
    missing = config_files() - set(listed)
    assert not missing, f'configs without a metafile entry: {missing}'
    for rel, m in models():
        cfg = ROOT / m['Config']
        assert cfg.is_file(), f'{rel}: {m["Config"]} does not exist'
        assert m['Name'] == cfg.stem, f'{rel}: name {m["Name"]}'
        assert Path(m['Config']).parent == Path(rel).parent, m['Name']


def test_collections_and_fields():
    for rel in metafiles():
        meta = yaml.safe_load((ROOT / rel).read_text())
        names = {c['Name'] for c in meta['Collections']}
        for c in meta['Collections']:
            assert (ROOT / c['README']).is_file(), c['README']
            assert c['Paper']['Title']
        for m in meta['Models']:
            assert m['In Collection'] in names, m['Name']
            md = m['Metadata']
            for key in ('Training Data', 'Batch Size', 'Architecture',
                        'Training Status'):
                assert key in md, f'{m["Name"]} lacks Metadata.{key}'
            for res in m.get('Results', []):
                assert {'Task', 'Dataset', 'Metrics'} <= set(res), m['Name']


def _row(source: str):
    """Look up ``FILE: rows / METHOD / ROW`` or ``FILE: finals / KEY``."""
    fname, where = source.split(': ', 1)
    assert fname.startswith(RESULTS_DIR) and fname.endswith('.json'), source
    results = json.loads((ROOT / fname).read_text())
    path = where.split(' / ')
    if path[0] == 'rows':
        matches = [
            r for r in results['rows']
            if r['method'] == path[1] and r['row'] == path[2]
        ]
        assert len(matches) == 1, source
        return results, 'row', matches[0]
    assert path[0] == 'finals', source
    return results, 'final', path[1]


def test_demo_numbers_match_results_json():
    checked = 0
    for rel, m in models():
        md = m['Metadata']
        status = md['Training Status']
        if NOT_TRAINED in status:
            for res in m.get('Results', []):
                assert not res['Metrics'], f'{m["Name"]} has numbers'
            assert 'Weights' not in m
            continue
        if 'Results Source' not in md:
            assert 'Results' not in m, m['Name']
            continue
        results, kind, row = _row(md['Results Source'])
        by_ds = {r['Dataset']: r['Metrics'] for r in m['Results']}
        if kind == 'final':
            values = [f[row] for f in results['finals']]
            expected = {'mIoU': round(100 * sum(values) / len(values), 1)}
            assert by_ds == {'WSSS demo scenes (val)': expected}, m['Name']
        else:
            st = row['stats']
            train = by_ds['WSSS demo scenes (train)']
            assert train['mIoU'] == round(100 * st['miou_global']['mean'], 1)
            assert train['mIoU (class-wise thr)'] == round(
                100 * st['miou_classwise']['mean'], 1)
            crf = [k for k in train if k.startswith('mIoU (+')]
            if st['crf']['mean'] is None:
                assert not crf, m['Name']
            else:
                assert [train[k]
                        for k in crf] == [round(100 * st['crf']['mean'],
                                                1)], m['Name']
            if st['val_miou']['mean'] is None:
                assert 'WSSS demo scenes (val)' not in by_ds
            else:
                assert by_ds['WSSS demo scenes (val)'] == {
                    'mIoU': round(100 * st['val_miou']['mean'], 1)
                }, m['Name']
            assert md['Parameters (M)'] == round(row['params_m'], 2)
        checked += 1
    assert checked >= 14  # every demo row and both final models


@pytest.mark.parametrize('dataset', ['Pascal VOC 2012', 'COCO 2014'])
def test_voc_and_coco_entries_are_not_trained(dataset):
    entries = [
        m for _, m in models()
        if any(r['Dataset'] == dataset for r in m.get('Results', []))
    ]
    assert entries
    for m in entries:
        assert NOT_TRAINED in m['Metadata']['Training Status'], m['Name']


def test_mim_reads_the_model_index():
    """``mim search`` goes through modelindex: it must parse our files."""
    from modelindex.load_model_index import load
    index = load(str(ROOT / 'model-index.yml'))
    names = {m.name for m in index.models}
    assert names == {Path(c).stem for c in config_files()}
