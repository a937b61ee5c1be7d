# Copyright (c) mmwsss contributors.
"""Resumable stage runner of the demo evaluation bed.

Every stage is the command a user runs (``tools/train.py``,
``tools/test.py``, ``tools/make_pseudo_labels.py``,
``tools/analysis_tools/sweep_thresholds.py`` ...), started as a subprocess
from the repository root and echoed. A stage whose output exists is
skipped, so an interrupted run continues where it stopped; outputs are
written under a temporary name and renamed (a killed run leaves no
half-written result file; the tools write their per-image files the same
way).

:class:`StageRunner` runs single commands (training with ``--resume``,
testing, JSON-producing tools). :class:`ExperimentRunner` runs ablation
rows (:mod:`mmwsss.experiments.rows`) on the demo data of one *dataset*
seed after another:

1. data: ``tools/dataset_converters/make_demo_dataset.py --seed S`` into
   ``DATA_ROOT/seedS`` (the unit of a seed is the dataset: different
   scenes; ``randomness.seed`` of every training equals it); Selective
   Search proposals when a row's config reads them;
2. per row, in table order: the budget check of
   :func:`mmwsss.experiments.budget.check_row` (a row whose config differs
   from its parent in an undeclared key is refused before anything is
   trained), training of the row's stages (each initialised from the
   previous stage's checkpoint: ``load_from`` when the stage config sets
   it, ``model.teacher_checkpoint`` when it names a teacher), saved
   multi-scale scores of the train split, the threshold sweep (best
   global and class-wise background thresholds, swept on that seed's own
   train split), DenseCRF (IRN label unary) at the best global threshold
   and ``tools/test.py`` on the val split at that threshold. A refine row
   reuses its parent's model and scores (:data:`~.rows.RANDOM_WALK`: an
   AffinityNet trained on confident labels of the parent's scores, then
   walked; any other kind: the row config's ``model.test_cfg.refine``);
3. per seed, the final model: the demo DeepLabV3+ trained on the best
   pseudo-labels of that seed (the row and refinement with the highest
   train mIoU, as WSSS papers pick pseudo-labels; nothing is selected on
   val) and, as the upper bound, on the real masks; both scored on val.

Layout of the work dir (:class:`Layout`)::

    seedS/models/<config stem>/       training runs (final.txt)
    seedS/rows/<table>/<row slug>/    scores, sweep, CRF labels, run.json
    seedS/labels/<candidate>/         thresholded seed labels (if chosen)
    seedS/final/<candidate>/, seedS/upper_bound/, seedS/final.json

The configs read their data from ``data/demo`` (:data:`CONFIG_DATA_ROOT`);
every string of a config under that folder (dataset roots, proposal
folders, label files) is pointed at the seed's data with ``--cfg-options``.
"""
import glob
import json
import os
import os.path as osp
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from .budget import check_row, flatten, repo_root
from .rows import (RANDOM_WALK, RowSpec, baseline_of, by_config, row_label,
                   slug)

ROOT = repo_root()
#: Where the demo configs expect the data.
CONFIG_DATA_ROOT = 'data/demo'
CAM_CONFIG = 'configs/cam/cam_effl0-d16_1xb32-500it_demo-128x128.py'
SEG_CONFIG = ('configs/deeplabv3plus/'
              'deeplabv3plus_effl0-d16_1xb16-800it_demo-pseudo-128x128.py')
GT_CONFIG = ('configs/deeplabv3plus/'
             'deeplabv3plus_effl0-d16_1xb16-800it_demo-gt-128x128.py')
#: The results bed (``make results``; docs/en/notes/demo_calibration.md):
#: 3,000 train images and final models of 2,400 iterations. ``make demo``
#: keeps 1,000 images and the 800-iteration configs above (30 minutes).
#: 500 val images (the demo's 200 plus 300 more: val images are drawn per
#: index, so the first 200 and the train split do not change) make the
#: final models' and upper bound's val figures less noisy; they are the
#: figures whose std over seeds the bed must keep within 1.5.
RESULTS_NUM_TRAIN = 3000
RESULTS_NUM_VAL = 500
RESULTS_SEG_CONFIG = ('configs/deeplabv3plus/'
                      'deeplabv3plus_effl0-d16_1xb16-2400it_demo-pseudo-'
                      '128x128.py')
RESULTS_GT_CONFIG = ('configs/deeplabv3plus/'
                     'deeplabv3plus_effl0-d16_1xb16-2400it_demo-gt-'
                     '128x128.py')
VAL_SPLIT = 'ImageSets/Segmentation/val.txt'
TRAIN_SPLIT = 'ImageSets/Segmentation/train.txt'
AUX_SPLIT_FILE = 'aux.txt'
#: Outputs computed from a trained model inside its work dir, removed when
#: the model is retrained (``tools/run_demo.py`` keeps them there).
DERIVED = ('test_metrics.json', 'seeds', 'threshold_sweep.json',
           'pseudo_labels', 'crf_eval.json')
#: Pseudo-label refinements eligible for the final model.
REFINEMENTS = ('global', 'classwise', 'crf')
#: Proposal folders the IG-CAM configs read (made on demand per seed).
PROPOSAL_KEY = 'proposal_dir'


class StageFailed(RuntimeError):
    """A stage's command exited with an error (its output is on stderr)."""


class RowRejected(ValueError):
    """A row config violates its declared change (budget check)."""


def read_json(path: str) -> Any:
    """Read a JSON file; a malformed file raises naming it."""
    try:
        with open(path, encoding='utf-8') as f:
            return json.load(f)
    except ValueError as e:
        raise ValueError(f'{path} is not valid JSON: {e}') from e


def write_json(path: str, obj: Any) -> None:
    """Write JSON atomically (temporary name + rename)."""
    from mmwsss.utils.io import atomic_write_bytes
    atomic_write_bytes(path, json.dumps(obj, indent=2).encode())


def _abs(path: str, root: Optional[str] = None) -> str:
    return path if osp.isabs(path) else osp.join(root or ROOT, path)


# ----------------------------------------------------------------------
# config-derived options
_CFG_CACHE: Dict[str, Any] = {}


def load_cfg(path: str, root: Optional[str] = None):
    """A config (cached per path; the runner never edits it).

    Args:
        path (str): Config path, relative to ``root`` (default: the
            repository) or absolute.
        root (str, optional): Folder of relative paths.
    """
    from mmengine.config import Config
    full = _abs(path, root)
    if full not in _CFG_CACHE:
        if not osp.isfile(full):
            raise FileNotFoundError(f'config {path} not found')
        _CFG_CACHE[full] = Config.fromfile(full)
    return _CFG_CACHE[full]


def data_root_options(config: str,
                      data_root: str,
                      old: str = CONFIG_DATA_ROOT,
                      root: Optional[str] = None) -> List[str]:
    """``--cfg-options`` that point every ``old/...`` string at the data.

    Dataset roots, proposal folders, label files and the influence pool's
    root all live under the configs' data folder; each such value, wherever
    it sits (pipelines and hook stages included), is overridden by its
    dotted key.

    Args:
        config (str): Config path.
        data_root (str): The folder to use instead of ``old``.
        old (str): The configs' data folder.
        root (str, optional): Folder of a relative ``config``.

    Returns:
        list[str]: ``key=value`` options (sorted by key).
    """
    items = flatten(load_cfg(config, root).to_dict())
    old = old.rstrip('/')
    new = data_root.rstrip('/')
    out = []
    for key, val in sorted(items.items()):
        if key.startswith('wsss_row'):
            continue
        if isinstance(val, str) and (val == old or val.startswith(old + '/')):
            out.append(f'{key}={new + val[len(old):]}')
    return out


def proposal_dirs(config: str, root: Optional[str] = None) -> List[str]:
    """Distinct proposal folders a config reads (``proposal_dir`` keys)."""
    items = flatten(load_cfg(config, root).to_dict())
    return sorted({
        v
        for k, v in items.items()
        if k.split('.')[-1] == PROPOSAL_KEY and isinstance(v, str) and v
    })


def reads_aux_split(config: str, root: Optional[str] = None) -> bool:
    """Whether a config reads the demo's ``aux`` split (e.g. the IG-CAM
    influence pool), which exists only with ``num_aux > 0``."""
    items = flatten(load_cfg(config, root).to_dict())
    return any(
        isinstance(v, str) and osp.basename(v) == AUX_SPLIT_FILE
        for v in items.values())


def schedule_options(config: str,
                     scale: Optional[float] = None,
                     iters: Optional[int] = None,
                     root: Optional[str] = None) -> List[str]:
    """Shorten a config's schedule from the command line (smoke runs).

    Scales ``train_cfg.max_iters`` (or sets it to ``iters``) and with it
    every iteration-valued ``begin`` / ``end`` of ``param_scheduler``,
    ``StageSwitchHook.switch_at``, the checkpoint interval (one checkpoint
    at the end), the logger interval and ``train_cfg.val_interval``.

    Args:
        config (str): Config path.
        scale (float, optional): Multiplier of the schedule length.
        iters (int, optional): New ``max_iters`` (wins over ``scale``).
        root (str, optional): Folder of a relative ``config``.

    Returns:
        list[str]: ``--cfg-options`` entries (empty when unchanged).
    """
    if iters is None and (scale is None or scale == 1.0):
        return []
    cfg = load_cfg(config, root)
    old = int(cfg.train_cfg.max_iters)
    n = int(iters) if iters is not None else max(2, int(round(old * scale)))

    def sc(v: int) -> int:
        return min(n, int(round(v * n / old)))

    opts = [
        f'train_cfg.max_iters={n}', f'default_hooks.checkpoint.interval={n}',
        f'default_hooks.logger.interval={max(1, min(25, n))}'
    ]
    if cfg.train_cfg.get('val_interval') is not None:
        opts.append(f'train_cfg.val_interval={n}')
    scheds = cfg.get('param_scheduler') or []
    if isinstance(scheds, dict):
        scheds = [scheds]
        prefix = 'param_scheduler'
    else:
        prefix = None
    for i, s in enumerate(scheds):
        if s.get('by_epoch', True) is not False:
            continue
        p = prefix or f'param_scheduler.{i}'
        begin = None
        if isinstance(s.get('begin'), int):
            begin = min(n - 1, sc(s['begin']))
            opts.append(f'{p}.begin={begin}')
        if isinstance(s.get('end'), int):
            # mmengine needs end > begin
            end = max((begin or 0) + 1, sc(s['end']))
            opts.append(f'{p}.end={end}')
    for i, h in enumerate(cfg.get('custom_hooks') or []):
        if isinstance(h, dict) and isinstance(h.get('switch_at'),
                                              (list, tuple)):
            # StageSwitchHook needs increasing iterations >= 1 (a switch
            # past the end of a short run simply never happens)
            vals: List[int] = []
            for v in h['switch_at']:
                vals.append(max(vals[-1] + 1 if vals else 1, sc(int(v))))
            opts.append(f'custom_hooks.{i}.switch_at='
                        f'[{",".join(map(str, vals))}]')
    return opts


def init_option(config: str,
                prev_ckpt: Optional[str],
                root: Optional[str] = None) -> List[str]:
    """How a stage starts from the previous stage's checkpoint.

    The stage config says how: a top-level ``load_from`` means "initialise
    from the previous stage" (the checkpoint replaces it); a
    ``model.teacher_checkpoint`` names a teacher (the previous stage is the
    teacher). The first stage of a chain may set neither (it has no
    previous stage to take it from).

    Args:
        config (str): The stage config.
        prev_ckpt (str, optional): The previous stage's checkpoint (None for
            the first stage).
        root (str, optional): Folder of a relative ``config``.

    Returns:
        list[str]: ``--cfg-options`` entries.

    Raises:
        ValueError: Naming the config when the chain and the config
            disagree.
    """
    cfg = load_cfg(config, root)
    loads = cfg.get('load_from') is not None
    model = cfg.get('model') or {}
    teacher = isinstance(model.get('teacher_checkpoint'), str) and \
        bool(model.get('teacher_checkpoint'))
    if prev_ckpt is None:
        if loads or teacher:
            raise ValueError(
                f'{config}: first stage of its chain but the config sets '
                f'{"load_from" if loads else "model.teacher_checkpoint"}; '
                'list the stage it starts from (e.g. the teacher) before it '
                'in wsss_row.stages')
        return []
    if loads:
        return [f'load_from={prev_ckpt}']
    if teacher:
        return [f'model.teacher_checkpoint={prev_ckpt}']
    raise ValueError(f'{config}: follows another stage in wsss_row.stages '
                     'but sets neither load_from nor '
                     'model.teacher_checkpoint, so it would not start from '
                     'the previous stage')


def model_params_m(config: str,
                   student_only: bool = True,
                   root: Optional[str] = None) -> float:
    """Parameters (M) of a config's model, built without any weights.

    Args:
        config (str): Config path.
        student_only (bool): For CamGuide, count the student only (the
            teacher is not part of the trained model).
    """
    from mmengine.config import Config

    from mmwsss.registry import MODELS
    from mmwsss.utils import register_all_modules
    register_all_modules()
    cfg = Config.fromfile(_abs(config, root))
    cfg.model.pop('teacher_checkpoint', None)
    if isinstance(cfg.model.get('backbone'), dict):
        cfg.model.backbone['init_cfg'] = None
    model = MODELS.build(cfg.model)
    if student_only and hasattr(model, 'num_student_params'):
        return model.num_student_params() / 1e6
    return sum(p.numel() for p in model.parameters()) / 1e6


# ----------------------------------------------------------------------
class StageRunner:
    """Runs the user commands of a pipeline; records stage times.

    Args:
        force (bool): Redo stages whose output exists.
        workers (int): ``num_workers`` of the data loaders and CRF
            processes.
        python (str): Interpreter of the tools (default: this one).
        log (callable): Printer of progress lines.
        channels_last (bool): Train and test with ``--channels-last``
            (:class:`~mmwsss.engine.hooks.ChannelsLastHook`: about 0.8x the
            step time of the demo models on CPU; the numbers change by
            float rounding and dropout masks only).
    """

    def __init__(self,
                 force: bool = False,
                 workers: int = 2,
                 python: Optional[str] = None,
                 log: Callable[[str], None] = None,
                 channels_last: bool = True) -> None:
        self.force = force
        self.workers = workers
        self.channels_last = channels_last
        self.py = python or sys.executable
        self.times: Dict[str, float] = {}
        self._log = log or (lambda m: print(m, flush=True))

    def log(self, msg: str) -> None:
        self._log(f'[run] {msg}')

    def run(self, cmd: List[str], stage: str) -> None:
        """Run a command from the repo root, echoing it; fail loudly.

        Raises:
            StageFailed: On a non-zero exit status.
        """
        shown = ' '.join(shlex.quote(c) for c in cmd)
        self._log(f'\n[run] {stage}: {shown}')
        t0 = time.time()
        env = dict(os.environ, PYTHONUNBUFFERED='1')
        ret = subprocess.run(cmd, cwd=ROOT, env=env)
        self.times[stage] = self.times.get(stage, 0.0) + time.time() - t0
        if ret.returncode != 0:
            raise StageFailed(f'stage "{stage}" failed with exit code '
                              f'{ret.returncode}; fix the error above and '
                              're-run (finished stages are skipped)')

    def done(self, path: str) -> bool:
        return osp.exists(path) and not self.force

    def loader_options(self, loaders: Sequence[str]) -> List[str]:
        return [f'{ld}.num_workers={self.workers}' for ld in loaders]

    def json_step(self, cmd: Callable[[str], List[str]], out: str,
                  stage: str) -> Any:
        """Run a tool that writes a JSON file, via a temporary name.

        Args:
            cmd (callable): ``cmd(tmp_path)`` gives the command writing
                ``tmp_path``.
            out (str): The result file (skipped when it exists).
            stage (str): Stage name.

        Returns:
            The JSON content.
        """
        if not self.done(out):
            os.makedirs(osp.dirname(out), exist_ok=True)
            tmp = out + '.tmp'
            self.run(cmd(tmp), stage)
            if not osp.isfile(tmp):
                raise StageFailed(f'stage "{stage}" wrote no {tmp}')
            read_json(tmp)
            os.replace(tmp, out)
        return read_json(out)

    def train(self,
              config: str,
              work: str,
              stage: str,
              extra: List[str],
              loaders: Sequence[str] = ('train_dataloader',
                                        'test_dataloader'),
              fingerprint: Any = None,
              config_sha: Optional[str] = None) -> str:
        """Train (resuming an interrupted run); return the checkpoint.

        ``work/final.txt`` names the checkpoint of a finished training; it
        is written last. ``work/train_options.json`` records the config and
        options: a folder trained with other ones (a smoke run's) is
        removed, not resumed (``fingerprint``, e.g. the data settings,
        is recorded and compared too, and so is the resolved config's
        content, :func:`config_digest`: an edited config retrains;
        ``config_sha`` gives it when ``config`` is relative to another
        root than the repository's). When a model is (re)trained,
        everything derived from an earlier model in ``work``
        (:data:`DERIVED`) is removed.
        """
        final = osp.join(work, 'final.txt')
        record = osp.join(work, 'train_options.json')
        want = dict(config=config, options=list(extra))
        if fingerprint is not None:
            want['fingerprint'] = fingerprint
        want['config_sha'] = config_sha or config_digest(config)
        if osp.isfile(record):
            have = read_json(record)
            if 'config_sha' not in have:
                # recorded before the digest existed: judged on the rest,
                # and the digest is recorded from now on
                have['config_sha'] = want['config_sha']
                if have == want:
                    write_json(record, want)
            if have != want:
                # e.g. a smoke run (--iters-scale) left this folder, or the
                # config changed since: never resume or reuse a model
                # trained with other options
                self.log(f'{stage}: {work} was trained with other options '
                         'or another version of its config; retraining')
                shutil.rmtree(work)
        if self.done(final):
            with open(final) as f:
                ckpt = f.read().strip()
            if osp.isfile(ckpt):
                self.log(f'{stage}: {ckpt} exists, kept')
                return ckpt
        if self.force and osp.isdir(work):
            shutil.rmtree(work)
        write_json(record, want)
        for derived in DERIVED:
            path = osp.join(work, derived)
            if osp.isdir(path):
                shutil.rmtree(path)
            elif osp.exists(path):
                os.remove(path)
        resume = osp.isfile(osp.join(work, 'last_checkpoint')) and \
            not self.force
        cmd = [self.py, 'tools/train.py', config, '--work-dir', work]
        if self.channels_last:
            cmd.append('--channels-last')
        if resume:
            cmd.append('--resume')
        self.run(cmd + ['--cfg-options'] + self.loader_options(loaders) +
                 list(extra), stage)
        with open(osp.join(work, 'last_checkpoint')) as f:
            ckpt = f.read().strip()
        from mmwsss.utils.io import atomic_write_bytes
        atomic_write_bytes(final, ckpt.encode())
        return ckpt

    def test(self, config: str, ckpt: str, work: str, stage: str,
             extra: List[str]) -> float:
        """``tools/test.py``; return the mIoU (fraction).

        The metrics are kept in ``work/test_metrics.json`` (skipped when it
        exists).
        """
        result = osp.join(work, 'test_metrics.json')
        if not self.done(result):
            t0 = time.time()
            self.run([
                self.py, 'tools/test.py', config, ckpt, '--work-dir', work
            ] + (['--channels-last'] if self.channels_last else []) +
                     ['--cfg-options'] +
                     self.loader_options(['test_dataloader']) + list(extra),
                     stage)
            logs = [
                p for p in glob.glob(osp.join(work, '*', '*.json'))
                if osp.getmtime(p) >= t0 - 1
            ]
            if not logs:
                raise StageFailed(f'{stage}: no metrics json under {work}')
            metrics = read_json(max(logs, key=osp.getmtime))
            if 'mIoU' not in metrics:
                raise StageFailed(f'{stage}: {logs} holds no mIoU')
            write_json(result, metrics)
        return float(read_json(result)['mIoU']) / 100.0


def config_digest(config: str, root: Optional[str] = None) -> str:
    """SHA-256 of a config's resolved content (its ``_base_`` files merged).

    Two versions of a config file that build the same settings have the
    same digest (comments and layout do not count); any changed value,
    in the file or in a base it inherits, changes it.

    Args:
        config (str): Config path, absolute or relative to ``root``.
        root (str, optional): Folder of relative paths (default: the
            repository).
    """
    import hashlib

    from mmengine.config import Config
    path = config if osp.isabs(config) else osp.join(root or ROOT, config)
    cfg = Config.fromfile(path).to_dict()
    text = json.dumps(cfg, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


# ----------------------------------------------------------------------
#: Image side to which the published DenseCRF constants (IRN's and PSA's
#: spatial stds, in pixels of ~500-pixel PASCAL VOC photographs) refer; a
#: demo scene of side ``s`` gets them divided by ``CRF_REF_SIDE / s``
#: (:meth:`DataSpec.crf_scale_factor`), so the CRF covers the same fraction
#: of the image as on VOC. CamGuide's stage-3 CRF target uses the same
#: reference (``configs/_base_/models/camguide_stage3_sizes.py``).
CRF_REF_SIDE = 512


@dataclass
class DataSpec:
    """Settings of the demo scenes (``make_demo_dataset.py``).

    Args:
        version (str, optional): Generator version (None: the newest).
        num_train (int): Train images.
        num_val (int): Val images.
        num_aux (int): Images of the ``aux`` split.
        img_size (int): Image side.
        difficulty (str, optional): JSON object of generator knobs.
    """
    version: Optional[str] = None
    num_train: int = 1000
    num_val: int = 200
    num_aux: int = 0
    img_size: int = 128
    difficulty: Optional[str] = None

    def crf_scale_factor(self) -> float:
        """DenseCRF ``scale_factor`` of these scenes (``CRF_REF_SIDE /
        img_size``: 4 at 128 pixels)."""
        return CRF_REF_SIDE / float(self.img_size)

    def resolved_version(self) -> str:
        from mmwsss.datasets.demo_scenes import GENERATOR_VERSION
        return self.version or GENERATOR_VERSION

    def meta(self, seed: int) -> dict:
        """What ``meta.json`` of a matching dataset holds."""
        from mmwsss.datasets.demo_scenes import resolve_difficulty
        version = self.resolved_version()
        knobs = resolve_difficulty(
            json.loads(self.difficulty) if self.difficulty else None,
            version)
        return dict(
            seed=seed,
            num_train=self.num_train,
            num_val=self.num_val,
            num_aux=self.num_aux,
            img_size=self.img_size,
            generator_version=version,
            difficulty={
                k: list(v) if isinstance(v, tuple) else v
                for k, v in knobs.items()
            })


def make_data(runner: StageRunner, root: str, seed: int,
              spec: DataSpec) -> None:
    """The demo scenes of one dataset seed (kept when they match).

    Args:
        runner (StageRunner): Runs the command.
        root (str): Output folder.
        seed (int): Dataset seed.
        spec (DataSpec): Generator settings.
    """
    meta = osp.join(root, 'meta.json')
    want = spec.meta(seed)
    if runner.done(meta):
        have = read_json(meta)
        if all(have.get(k) == v for k, v in want.items()):
            runner.log(f'data: {root} exists, kept')
            return
        runner.log(f'data: {root} was made with other settings; '
                   'regenerating')
    runner.run([
        runner.py, 'tools/dataset_converters/make_demo_dataset.py', root,
        '--seed',
        str(seed), '--num-train',
        str(spec.num_train), '--num-val',
        str(spec.num_val), '--img-size',
        str(spec.img_size), '--num-aux',
        str(spec.num_aux), '--version',
        spec.resolved_version(), '--workers',
        str(runner.workers), '--force'
    ] + (['--difficulty', spec.difficulty] if spec.difficulty else []),
               f'[{seed}] data')


def class_names(data_root: str) -> List[str]:
    """Class names from the dataset's ``meta.json`` (else the demo's)."""
    meta = osp.join(data_root, 'meta.json')
    if osp.isfile(meta):
        m = read_json(meta)
        if isinstance(m, dict) and m.get('classes'):
            return list(m['classes'])
    from mmwsss.datasets.demo_scenes import DEMO_CLASSES
    return list(DEMO_CLASSES)


def palette(data_root: str) -> List[List[int]]:
    """Palette from the dataset's ``meta.json`` (else the demo's)."""
    meta = osp.join(data_root, 'meta.json')
    if osp.isfile(meta):
        m = read_json(meta)
        if isinstance(m, dict) and m.get('palette'):
            return [list(c) for c in m['palette']]
    from mmwsss.datasets.demo_scenes import DEMO_PALETTE
    return [list(c) for c in DEMO_PALETTE]


def split_names(data_root: str, split: str = TRAIN_SPLIT) -> List[str]:
    """Image stems of a split file.

    Raises:
        FileNotFoundError: Naming the split file.
    """
    path = osp.join(data_root, split)
    if not osp.isfile(path):
        raise FileNotFoundError(f'split file not found: {path}')
    with open(path) as f:
        return [ln.strip() for ln in f if ln.strip()]


# ----------------------------------------------------------------------
@dataclass(frozen=True)
class Layout:
    """Where the runner keeps the outputs of each seed (see module doc).

    Args:
        work_dir (str): Root of the run folders.
        data_root (str): Root of the per-seed datasets (``seedS``).
    """
    work_dir: str
    data_root: str

    def data(self, seed: int) -> str:
        return osp.join(self.data_root, f'seed{seed}')

    def seed(self, seed: int) -> str:
        return osp.join(self.work_dir, f'seed{seed}')

    def model(self, seed: int, config: str) -> str:
        stem = osp.splitext(osp.basename(config))[0]
        return osp.join(self.seed(seed), 'models', stem)

    def row(self, seed: int, spec: RowSpec) -> str:
        return osp.join(self.seed(seed), 'rows', spec.table, spec.key)

    def run_json(self, seed: int, spec: RowSpec) -> str:
        return osp.join(self.row(seed, spec), 'run.json')

    def labels(self, seed: int, cand: dict) -> str:
        return osp.join(self.seed(seed), 'labels', candidate_slug(cand))

    def final(self, seed: int, cand: dict) -> str:
        return osp.join(self.seed(seed), 'final', candidate_slug(cand))

    def upper(self, seed: int) -> str:
        return osp.join(self.seed(seed), 'upper_bound')

    def final_json(self, seed: int) -> str:
        return osp.join(self.seed(seed), 'final.json')


# ----------------------------------------------------------------------
# pseudo-label candidates
def candidate_slug(cand: dict) -> str:
    """A folder name for a candidate, e.g. ``camguide-our-crf``."""
    return slug(f'{cand["table"]}-{cand["row"]}-{cand["refinement"]}')


def candidates(runs: Dict[Tuple[str, str], dict],
               refinements: Sequence[str] = REFINEMENTS) -> List[dict]:
    """Pseudo-label candidates of one seed.

    Only runs with their folders here (scores or labels on disk) are
    candidates: numbers carried from an earlier ``results.json`` have none.

    Args:
        runs (dict): ``{(table, name): run}`` of one seed, table order.
        refinements (Sequence[str]): Subset of :data:`REFINEMENTS`.

    Returns:
        list[dict]: ``table``, ``row``, ``refinement``, ``title``
        (``ref_title`` without the row), ``miou`` and the label source
        (``labels_dir`` for refined labels, else ``scores_dir`` + ``thr``),
        in table order.
    """
    bad = set(refinements) - set(REFINEMENTS)
    if bad:
        raise ValueError(f'refinements must be among {REFINEMENTS}, got '
                         f'{sorted(bad)}')
    out = []
    for (table, name), run in runs.items():
        base = dict(table=table, row=name, seed=run.get('seed'))

        who = row_label(table, name)

        def titled(ref_title):
            return dict(ref_title=ref_title, title=f'{who}, {ref_title}')

        own = run.get('seed_candidates', True)
        if own and run.get('scores_dir') and osp.isdir(run['scores_dir']):
            if 'global' in refinements:
                out.append(
                    dict(
                        base,
                        refinement='global',
                        **titled('seed'),
                        miou=run['miou_global'],
                        scores_dir=run['scores_dir'],
                        thr=run['thr']))
            if 'classwise' in refinements and run.get('thr_vector'):
                vec = [
                    0.0 if t is None else float(t) for t in run['thr_vector']
                ]
                out.append(
                    dict(
                        base,
                        refinement='classwise',
                        **titled('seed, class-wise thr'),
                        miou=run['miou_classwise'],
                        scores_dir=run['scores_dir'],
                        thr=vec))
        if 'crf' in refinements and run.get('crf') is not None and \
                run.get('crf_labels_dir') and \
                osp.isdir(run['crf_labels_dir']):
            out.append(
                dict(
                    base,
                    refinement='crf',
                    **titled(run.get('crf_name', '+dCRF')),
                    miou=run['crf'],
                    labels_dir=run['crf_labels_dir']))
    return out


def select_best(cands: Sequence[dict]) -> dict:
    """The candidate with the highest train mIoU (first one on ties).

    Raises:
        ValueError: When ``cands`` is empty.
    """
    if not cands:
        raise ValueError('cands is empty: no pseudo-label candidate with a '
                         'train mIoU (no finished row for this seed)')
    best = cands[0]
    for c in cands[1:]:
        if c['miou'] > best['miou']:
            best = c
    return best


def seed_labels(scores_path: str, thr: Any):
    """Label map of one saved score file at background threshold(s).

    Args:
        scores_path (str): ``.npz`` with ``scores`` (C, H, W) and
            ``img_labels``.
        thr (float | Sequence[float]): Global or per-class thresholds.

    Returns:
        np.ndarray: int64 label map (H, W).
    """
    import numpy as np

    from mmwsss.cams.thresholds import apply_thresholds
    with np.load(scores_path) as d:
        scores = d['scores'].astype(np.float32)
        labels = [int(x) for x in np.ravel(d['img_labels'])]
    return apply_thresholds(scores, labels, thr)


def write_seed_labels(scores_dir: str, names: Sequence[str], thr: Any,
                      out_dir: str, pal: Sequence[Sequence[int]]) -> int:
    """Write thresholded seed labels as palette PNGs (resumable).

    Args:
        scores_dir (str): Folder of ``<name>.npz`` scores.
        names (Sequence[str]): Image stems.
        thr (float | Sequence[float]): See :func:`seed_labels`.
        out_dir (str): Output folder.
        pal (Sequence): Class colours.

    Returns:
        int: PNGs written (existing ones are kept).

    Raises:
        ValueError: Naming the folder when score files are missing.
    """
    from mmwsss.utils.io import atomic_save_label_png
    missing = [
        n for n in names if not osp.isfile(osp.join(scores_dir, n + '.npz'))
    ]
    if missing:
        raise ValueError(f'scores_dir {scores_dir} lacks {len(missing)} of '
                         f'{len(names)} score files (first: {missing[0]})')
    os.makedirs(out_dir, exist_ok=True)
    n = 0
    for name in names:
        out = osp.join(out_dir, name + '.png')
        if osp.isfile(out):
            continue
        atomic_save_label_png(
            out, seed_labels(osp.join(scores_dir, name + '.npz'), thr), pal)
        n += 1
    return n


# ----------------------------------------------------------------------
@dataclass
class RunSettings:
    """What :class:`ExperimentRunner` runs and where.

    Args:
        work_dir (str): Run folders (:class:`Layout`).
        data_root (str): Per-seed datasets (``DATA_ROOT/seedS``).
        data (DataSpec): Scene generator settings.
        workers (int): Data loader workers and CRF processes.
        iters_scale (float): Multiplier of every training schedule (smoke).
        limit (int, optional): Score only the first N train images (smoke;
            no final model then).
        force (bool): Redo every stage.
        select_from (Sequence[str]): Refinements eligible as pseudo-labels
            of the final model.
        seg_config (str): Final model config (pseudo-labels).
        gt_config (str): Upper-bound config (real masks).
        seg_init (str): ``'cam'`` (the seed's baseline CAM backbone) or
            ``'imagenet'``.
        seg_iters (int, optional): Override the final models' schedule.
        final (bool): Train the final model and the upper bound.
        upper_bound (bool): Train the upper bound.
        baseline_final (bool): Also train a final model on the baseline +
            dCRF labels when they are not the best ones (the demo bed's
            figure; see :meth:`ExperimentRunner.final_models`).
        params (bool): Count each row model's parameters.
    """
    work_dir: str = 'work_dirs/results'
    data_root: str = 'data/demo_results'
    data: DataSpec = field(default_factory=DataSpec)
    workers: int = 2
    iters_scale: float = 1.0
    limit: Optional[int] = None
    force: bool = False
    select_from: Sequence[str] = REFINEMENTS
    seg_config: str = RESULTS_SEG_CONFIG
    gt_config: str = RESULTS_GT_CONFIG
    seg_init: str = 'cam'
    seg_iters: Optional[int] = None
    final: bool = True
    upper_bound: bool = True
    baseline_final: bool = True
    params: bool = True


class ExperimentRunner:
    """Runs ablation rows, seed by seed, skipping finished stages.

    Args:
        rows (Sequence[RowSpec]): Every row (:func:`~.rows.load_rows`).
        selected (Sequence[RowSpec]): The rows to run
            (:func:`~.rows.select_rows`; prerequisites included).
        settings (RunSettings): Where and how.
        stage_runner (StageRunner, optional): Runs the commands.
        budget_check (callable): ``check(config) -> list of violations``
            (default: :func:`~.budget.check_row` under ``root``).
        root (str, optional): Folder of the configs' relative paths
            (default: the repository).
    """

    def __init__(self,
                 rows: Sequence[RowSpec],
                 selected: Sequence[RowSpec],
                 settings: RunSettings,
                 stage_runner: Optional[StageRunner] = None,
                 budget_check: Optional[Callable[[str], List[str]]] = None,
                 root: Optional[str] = None) -> None:
        self.root = root or ROOT
        self.rows = list(rows)
        self.selected = list(selected)
        self.s = settings
        self.layout = Layout(_abs(settings.work_dir), _abs(settings.data_root))
        self.sr = stage_runner or StageRunner(settings.force,
                                              settings.workers)
        self.budget_check = budget_check or (
            lambda path: check_row(path, self.root))
        self.index = by_config(self.rows)
        self.baseline = baseline_of(self.rows)
        self._params: Dict[str, Optional[float]] = {}

    def log(self, msg: str) -> None:
        self.sr.log(msg)

    # ------------------------------------------------------------------
    def plan(self) -> None:
        """Refuse rows that violate their declared change, and stage
        chains that cannot be run, before anything is trained.

        Raises:
            RowRejected: Listing every violation of every selected row.
            ValueError: On conflicting or malformed stage chains, or a row
                that reads the ``aux`` split when the data has none.
        """
        problems = []
        for spec in self.selected:
            problems += self.budget_check(spec.config)
        if problems:
            raise RowRejected(
                'refusing to run rows whose configs differ from their parent '
                'in undeclared keys (fix the config or its wsss_row.change):'
                '\n  ' + '\n  '.join(problems))
        if self.s.data.num_aux <= 0:
            for spec in self.selected:
                for cfg in set(spec.train_configs) | {spec.config}:
                    if reads_aux_split(cfg, self.root):
                        raise ValueError(
                            f'{cfg} reads the demo\'s aux split (e.g. the '
                            'IG-CAM influence pool) but the data has none: '
                            'pass --num-aux N (N > 0)')
        prev_of: Dict[str, Optional[str]] = {}
        for spec in self.selected:
            if spec.refine is not None:
                continue
            prev = None
            for cfg in spec.train_configs:
                if cfg in prev_of and prev_of[cfg] != prev:
                    raise ValueError(
                        f'{spec.config}: stage {cfg} follows {prev} here but '
                        f'{prev_of[cfg]} in another row; a stage config is '
                        'trained once per seed, so give it one predecessor')
                prev_of[cfg] = prev
                init_option(cfg, None if prev is None else '<prev>',
                            self.root)
                prev = cfg

    # ------------------------------------------------------------------
    def seed_options(self, seed: int, config: str) -> List[str]:
        """``randomness.seed`` and the data folder of one seed."""
        return [f'randomness.seed={seed}'] + data_root_options(
            config, self.layout.data(seed), root=self.root)

    def prepare_data(self, seed: int) -> None:
        data = self.layout.data(seed)
        make_data(self.sr, data, seed, self.s.data)
        dirs = set()
        for spec in self.selected:
            for cfg in set(spec.train_configs) | {spec.config}:
                dirs.update(proposal_dirs(cfg, self.root))
        for d in sorted(dirs):
            if not (d == CONFIG_DATA_ROOT or
                    d.startswith(CONFIG_DATA_ROOT + '/')):
                raise ValueError(f'proposal folder {d} lies outside '
                                 f'{CONFIG_DATA_ROOT}; it cannot follow the '
                                 'dataset seed')
            out = data + d[len(CONFIG_DATA_ROOT):]
            self.sr.run([
                self.sr.py, 'tools/generate_proposals.py',
                osp.join(data, 'JPEGImages'), '--out', out, '--workers',
                str(self.s.workers)
            ], f'[{seed}] proposals')

    def train_chain(self, spec: RowSpec, seed: int) -> str:
        """Train a row's stages in order; return the last checkpoint."""
        ckpt = None
        for i, cfg in enumerate(spec.train_configs):
            opts = self.seed_options(seed, cfg) + schedule_options(
                cfg, self.s.iters_scale, root=self.root) + init_option(
                    cfg, ckpt, self.root)
            label = osp.splitext(osp.basename(cfg))[0]
            if len(spec.train_configs) > 1:
                label = f'stage {i + 1}/{len(spec.train_configs)} {label}'
            ckpt = self.sr.train(
                cfg,
                self.layout.model(seed, cfg),
                f'[{seed}] train {label}',
                opts,
                fingerprint=self.s.data.meta(seed),
                config_sha=config_digest(cfg, self.root))
        return ckpt

    # ------------------------------------------------------------------
    def _limit(self) -> List[str]:
        return ['--limit', str(self.s.limit)] if self.s.limit else []

    def scores(self, config: str, ckpt: str, work: str, seed: int,
               stage: str, extra: Sequence[str] = ()) -> str:
        """Saved multi-scale scores of the train split (resumable)."""
        out = osp.join(work, 'seeds')
        self.sr.run([
            self.sr.py, 'tools/make_pseudo_labels.py', config, ckpt, '--out',
            out, '--refine', 'none', '--save-scores', '--workers', '1'
        ] + self._limit() + ['--cfg-options'] +
                    self.seed_options(seed, config) + list(extra),
                    stage + ': scores')
        return osp.join(out, 'scores')

    def sweep(self, scores: str, work: str, seed: int, stage: str) -> dict:
        """Best global and class-wise background thresholds on train."""
        data = self.layout.data(seed)
        sw = self.sr.json_step(
            lambda tmp: [
                self.sr.py, 'tools/analysis_tools/sweep_thresholds.py',
                '--scores-dir', scores, '--gt-dir',
                osp.join(data, 'SegmentationClass'), '--out', tmp,
                '--class-names', ','.join(class_names(data))
            ], osp.join(work, 'threshold_sweep.json'),
            stage + ': threshold sweep')
        try:
            return dict(
                thr=float(sw['best_global']['thr']),
                miou_global=float(sw['best_global']['miou']),
                miou_classwise=float(sw['classwise']['miou']),
                thr_vector=sw['classwise'].get('thr_vector'))
        except (KeyError, TypeError) as e:
            raise ValueError(f'{work}/threshold_sweep.json lacks best_global'
                             f'/classwise results ({e!r})') from e

    def _crf_scale(self, refine: str) -> List[str]:
        """``--crf-scale-factor`` of a DenseCRF preset at the demo's image
        size (a config's own refiner sets its ``scale_factor`` itself)."""
        if refine not in ('irn_label', 'psa_softmax'):
            return []
        return ['--crf-scale-factor', f'{self.s.data.crf_scale_factor():g}']

    def refine_labels(self, config: str, ckpt: str, scores: str, thr: float,
                      work: str, seed: int, stage: str,
                      refine: str = 'irn_label') -> float:
        """Refined labels from saved scores, scored on train."""
        out = osp.join(work, 'pseudo_labels_crf')
        res = osp.join(work, 'crf_eval.json')
        data = self.layout.data(seed)
        if not self.sr.done(res):
            self.sr.run([
                self.sr.py, 'tools/make_pseudo_labels.py', config, ckpt,
                '--out', out, '--refine', refine, '--bg-thr',
                str(thr), '--from-scores', scores, '--workers',
                str(self.s.workers)
            ] + self._crf_scale(refine) + self._limit() + ['--cfg-options'] +
                        self.seed_options(seed, config), stage + ': ' +
                        ('DenseCRF' if refine == 'irn_label' else
                         f'{refine} (model.test_cfg.refine of {config})'
                         if refine == 'config' else refine))
        ev = self.sr.json_step(
            lambda tmp: [
                self.sr.py, 'tools/analysis_tools/eval_label_maps.py', out,
                osp.join(data, 'SegmentationClass'), '--num-classes',
                str(len(class_names(data))), '--out', tmp
            ], res, stage + ': score labels')
        return float(ev['miou'])

    def val_test(self, config: str, ckpt: str, work: str, seed: int,
                 stage: str, thr: float) -> float:
        """``tools/test.py`` on the val split at the train-swept threshold.

        The seed columns score the train split (the WSSS protocol); this is
        the user command on images that no row was trained or thresholded
        on, with the config's test setting (scales, flip, refinement).
        """
        opts = self.seed_options(seed, config) + [
            f'test_dataloader.dataset.ann_file={VAL_SPLIT}',
            f'model.test_cfg.bg_thr={thr}'
        ]
        if self.s.limit:
            opts.append(f'test_dataloader.dataset.indices={self.s.limit}')
        return self.sr.test(config, ckpt, work,
                            stage + ': tools/test.py (val split)', opts)

    # ------------------------------------------------------------------
    def _fresh(self, spec: RowSpec, seed: int, ckpt: str) -> Optional[dict]:
        """The finished run of a row if it was made from ``ckpt``; else
        clear the row folder (a retrained model makes it stale)."""
        path = self.layout.run_json(seed, spec)
        work = self.layout.row(seed, spec)
        stamp = dict(_ckpt_stamp(ckpt), limit=self.s.limit)
        if osp.isfile(path) and not self.sr.force:
            run = read_json(path)
            if run.get('checkpoint_stamp') == stamp:
                return run
            self.log(f'[{seed}] {spec.name}: made from another checkpoint, '
                     'redone')
        marker = osp.join(work, 'checkpoint.json')
        if osp.isdir(work) and (self.sr.force or not osp.isfile(marker) or
                                read_json(marker) != stamp):
            shutil.rmtree(work)
        os.makedirs(work, exist_ok=True)
        write_json(marker, stamp)
        return None

    def run_row(self, spec: RowSpec, seed: int,
                done: Dict[str, dict]) -> dict:
        """Run (or read) one row of one seed; return its run record.

        Args:
            spec (RowSpec): The row.
            seed (int): Dataset seed.
            done (dict): ``{config: run}`` of the rows run before this one
                on this seed (refine rows read their parent's).
        """
        stage = f'[{seed}] {spec.name}'
        work = self.layout.row(seed, spec)
        if spec.refine is not None:
            parent = done.get(spec.parent)
            if parent is None:
                raise ValueError(f'{spec.config}: parent row {spec.parent} '
                                 'has not run on this seed')
            if spec.refine == RANDOM_WALK:
                run = self._random_walk(spec, seed, parent, stage, work)
            else:
                run = self._config_refine(spec, seed, parent, stage, work)
        else:
            ckpt = self.train_chain(spec, seed)
            old = self._fresh(spec, seed, ckpt)
            if old is not None:
                self.log(f'{stage}: {self.layout.run_json(seed, spec)} '
                         'exists, kept')
                return old
            scores = self.scores(spec.config, ckpt, work, seed, stage)
            run = self.sweep(scores, work, seed, stage)
            run.update(checkpoint=ckpt, scores_dir=scores)
            run['crf'] = self.refine_labels(spec.config, ckpt, scores,
                                            run['thr'], work, seed, stage)
            run.update(
                crf_labels_dir=osp.join(work, 'pseudo_labels_crf'),
                crf_name='+dCRF')
            run['val_miou'] = self.val_test(spec.config, ckpt, work, seed,
                                            stage, run['thr'])
        return self._finish(spec, seed, run)

    def _config_refine(self, spec: RowSpec, seed: int, parent: dict,
                       stage: str, work: str) -> dict:
        ckpt = parent['checkpoint']
        old = self._fresh(spec, seed, ckpt)
        if old is not None:
            return old
        cfg = load_cfg(spec.config, self.root)
        if not (cfg.get('model') or {}).get('test_cfg', {}).get('refine'):
            raise ValueError(f'{spec.config}: wsss_row.refine='
                             f'{spec.refine!r} but the config sets no '
                             'model.test_cfg.refine to apply')
        run = {
            k: parent.get(k)
            for k in ('thr', 'miou_global', 'miou_classwise', 'thr_vector',
                      'scores_dir')
        }
        run.update(checkpoint=ckpt, seed_candidates=False)
        run['crf'] = self.refine_labels(
            spec.config, ckpt, parent['scores_dir'], parent['thr'], work,
            seed, stage, refine='config')
        run.update(
            crf_labels_dir=osp.join(work, 'pseudo_labels_crf'),
            crf_name='refined')
        run['val_miou'] = self.val_test(spec.config, ckpt, work, seed, stage,
                                        parent['thr'])
        return run

    def _random_walk(self, spec: RowSpec, seed: int, parent: dict,
                     stage: str, work: str) -> dict:
        """AffinityNet on confident labels of the parent's scores."""
        thr = float(parent['thr'])
        # ReCAM author's rule: seed threshold +- 0.1 (IRN's 0.30 / 0.05 are
        # for VOC CAMs with a seed threshold of 0.15)
        fg_thr, bg_thr = min(0.95, thr + 0.1), max(0.0, thr - 0.1)
        aff_work = osp.join(self.layout.seed(seed), 'models',
                            f'{spec.table}-{spec.key}')
        # confident labels of the parent's scores; the marker (written once
        # they are complete) names what they were made from
        labels = aff_work + '-labels'
        source = dict(
            parent=parent['checkpoint_stamp'], fg_thr=fg_thr, bg_thr=bg_thr)
        marker = osp.join(labels, 'source.json')
        if osp.isdir(labels) and (self.sr.force or not osp.isfile(marker)
                                  or read_json(marker) != source):
            shutil.rmtree(labels)
        data = self.layout.data(seed)
        if not osp.isfile(marker):
            self.sr.run([
                self.sr.py, 'tools/make_affinity_labels.py',
                parent['scores_dir'], labels, '--img-dir',
                osp.join(data, 'JPEGImages'), '--fg-thr',
                str(fg_thr), '--bg-thr',
                str(bg_thr), '--workers',
                str(self.s.workers)
            ], stage + ': confident labels')
            write_json(marker, source)
        cam_dir = 'model.test_cfg.cam_dir=' + parent['scores_dir']
        opts = self.seed_options(seed, spec.config) + schedule_options(
            spec.config, self.s.iters_scale, root=self.root) + [
                'train_dataloader.dataset.data_prefix.seg_map_path=' + labels,
                cam_dir
            ]
        if self.s.limit:
            # a --limit run has confident labels of its first N images only
            opts.append(f'train_dataloader.dataset.indices={self.s.limit}')
        ckpt = self.sr.train(
            spec.config,
            aff_work,
            stage + ': AffinityNet',
            opts, ('test_dataloader', ),
            fingerprint=dict(self.s.data.meta(seed), labels=source),
            config_sha=config_digest(spec.config, self.root))
        old = self._fresh(spec, seed, ckpt)
        if old is not None:
            return old
        scores = self.scores(spec.config, ckpt, work, seed, stage, [cam_dir])
        run = self.sweep(scores, work, seed, stage)
        run.update(checkpoint=ckpt, scores_dir=scores)
        run['crf'] = self.refine_labels(spec.config, ckpt, scores,
                                        run['thr'], work, seed, stage)
        run.update(
            crf_labels_dir=osp.join(work, 'pseudo_labels_crf'),
            crf_name='+dCRF')
        # no val row: the walk needs saved CAM scores, kept for train only
        return run

    def _finish(self, spec: RowSpec, seed: int, run: dict) -> dict:
        if 'checkpoint_stamp' in run:
            return run
        run.update(
            seed=seed,
            table=spec.table,
            name=spec.name,
            config=spec.config,
            checkpoint_stamp=dict(
                _ckpt_stamp(run['checkpoint']), limit=self.s.limit),
            limit=self.s.limit,
            iters_scale=self.s.iters_scale)
        if self.s.params:
            if spec.config not in self._params:
                self._params[spec.config] = model_params_m(
                    spec.config, root=self.root)
            run['params_m'] = self._params[spec.config]
        write_json(self.layout.run_json(seed, spec), run)
        return run

    # ------------------------------------------------------------------
    def final_models(self, seed: int, runs: Dict[Tuple[str, str],
                                                 dict]) -> Optional[dict]:
        """Final model on the best pseudo-labels of one seed, the upper
        bound on the real masks and (``baseline_final``) a final model on
        the baseline + dCRF labels; writes ``seedS/final.json``.

        The baseline's final model is the demo bed's "final on the CRF
        labels" figure (:mod:`~mmwsss.experiments.calibration`): it shows
        whether the final model learns what it is given, whatever row wins.
        When the baseline + dCRF labels are the best ones, one model serves
        both.
        """
        path = self.layout.final_json(seed)
        cands = candidates(runs, self.s.select_from)
        if not cands:
            self.log(f'[{seed}] no pseudo-label candidate, no final model')
            return None
        best = select_best(cands)
        base_cand = self._baseline_crf(runs) if self.s.baseline_final \
            else None
        if self.sr.done(path):
            old = read_json(path)
            if old.get('best', {}).get('slug') == candidate_slug(best) and \
                    (old.get('upper_miou') is not None or
                     not self.s.upper_bound) and \
                    (base_cand is None or
                     old.get('baseline_final') is not None):
                self.log(f'[{seed}] final models: {path} exists, kept')
                return old
        self.log(f'[{seed}] best pseudo-labels: {best["title"]} '
                 f'({100 * best["miou"]:.1f} on train)')
        base_ckpt = None
        if self.s.seg_init == 'cam':
            base_run = runs.get(self.baseline.ident)
            if not base_run or not base_run.get('checkpoint'):
                raise ValueError(f'[{seed}] --seg-init cam needs the '
                                 'baseline row of this seed')
            base_ckpt = base_run['checkpoint']
        final = dict(
            seed=seed,
            best={
                k: best[k]
                for k in ('table', 'row', 'refinement', 'title', 'miou')
            })
        final['best']['slug'] = candidate_slug(best)
        final['pseudo_miou'], final['final_miou'] = self._final_on(
            seed, best, base_ckpt)
        if base_cand is not None:
            same = candidate_slug(base_cand) == candidate_slug(best)
            pseudo, fin = (final['pseudo_miou'], final['final_miou']) \
                if same else self._final_on(seed, base_cand, base_ckpt)
            final['baseline_final'] = dict(
                slug=candidate_slug(base_cand),
                title=base_cand['title'],
                pseudo_miou=pseudo,
                final_miou=fin)
        final['upper_miou'] = None
        if self.s.upper_bound:
            final['upper_miou'] = self._seg_model(
                seed, self.s.gt_config, self.layout.upper(seed), [],
                base_ckpt, 'upper bound (real masks)')
        write_json(path, final)
        return final

    def _baseline_crf(self, runs: Dict[Tuple[str, str],
                                       dict]) -> Optional[dict]:
        """The baseline + dCRF candidate (None when its labels are gone)."""
        for c in candidates(runs, ('crf', )):
            if (c['table'], c['row']) == self.baseline.ident:
                return c
        return None

    def _final_on(self, seed: int, cand: dict,
                  base_ckpt: Optional[str]) -> Tuple[float, float]:
        """Train and test a final model on one candidate's labels; return
        the labels' train mIoU and the model's val mIoU."""
        labels_dir, miou = self.prepare_labels(seed, cand)
        n_lab = len([f for f in os.listdir(labels_dir) if f.endswith('.png')])
        n_img = len(split_names(self.layout.data(seed)))
        if n_lab < n_img:
            raise ValueError(f'{labels_dir} holds {n_lab} label PNGs for '
                             f'{n_img} train images (a --limit run?); cannot '
                             'train the final model on it')
        fin = self._seg_model(
            seed, self.s.seg_config, self.layout.final(seed, cand), [
                'train_dataloader.dataset.data_prefix.seg_map_path=' +
                labels_dir
            ], base_ckpt, f'final model ({cand["title"]})')
        return miou, fin

    def _seg_model(self, seed: int, cfg: str, work: str, extra: List[str],
                   base_ckpt: Optional[str], what: str) -> float:
        """Train (or keep) one segmentation model; return its val mIoU."""
        opts = self.seed_options(seed, cfg) + schedule_options(
            cfg, iters=self.s.seg_iters, root=self.root)
        if base_ckpt:
            opts += [
                f'model.backbone.init_cfg.checkpoint={base_ckpt}',
                'model.backbone.init_cfg.prefix=backbone.'
            ]
        ckpt = self.sr.train(
            cfg,
            work,
            f'[{seed}] train {what}',
            opts + extra,
            ('train_dataloader', 'val_dataloader', 'test_dataloader'),
            fingerprint=self.s.data.meta(seed),
            config_sha=config_digest(cfg, self.root))
        return self.sr.test(
            cfg, ckpt, work, f'[{seed}] test {what}',
            data_root_options(cfg, self.layout.data(seed), root=self.root))

    def prepare_labels(self, seed: int, best: dict) -> Tuple[str, float]:
        """Folder and train mIoU of the chosen pseudo-labels."""
        if best['refinement'] == 'crf':
            return best['labels_dir'], best['miou']
        from mmwsss.evaluation import evaluate_label_dirs
        data = self.layout.data(seed)
        lab_dir = self.layout.labels(seed, best)
        res_path = lab_dir + '.json'
        if not self.sr.done(res_path):
            names = split_names(data)
            n = write_seed_labels(best['scores_dir'], names, best['thr'],
                                  lab_dir, palette(data))
            self.log(f'wrote {n} seed labels to {lab_dir}')
            res = evaluate_label_dirs(
                lab_dir,
                osp.join(data, 'SegmentationClass'),
                len(class_names(data)),
                names,
                progress=False)
            write_json(res_path, dict(miou=res['miou'], thr=best['thr']))
        return lab_dir, float(read_json(res_path)['miou'])

    # ------------------------------------------------------------------
    def run_seed(self, seed: int) -> Dict[Tuple[str, str], dict]:
        """Every selected row of one seed, then its final models."""
        self.prepare_data(seed)
        done: Dict[str, dict] = {}
        runs: Dict[Tuple[str, str], dict] = {}
        for spec in self.selected:
            run = self.run_row(spec, seed, done)
            done[spec.config] = run
            runs[spec.ident] = run
        if self.s.final:
            self.final_models(seed, runs)
        return runs

    def run(self, seeds: Sequence[int]) -> Dict[int, dict]:
        """Plan, then run every seed; returns ``{seed: runs}``."""
        self.plan()
        return {seed: self.run_seed(seed) for seed in seeds}


def _ckpt_stamp(ckpt: str) -> dict:
    """Identity of a checkpoint file: path, size and modification time."""
    st = os.stat(ckpt)
    return dict(path=ckpt, size=st.st_size, mtime_ns=st.st_mtime_ns)
