# Copyright (c) mmwsss contributors.
"""Log CAM pictures of a few fixed images while a CAM model trains."""
import copy
import os.path as osp
from typing import Optional, Sequence

from mmengine.dataset import pseudo_collate
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import DefaultScope

from mmwsss.registry import HOOKS

SPLITS = ('auto', 'train', 'val', 'test')


@HOOKS.register_module()
class CAMVisualizationHook(Hook):
    """Draw the CAMs of a few fixed images every ``interval`` iterations.

    The pictures (one row per image: the image, the CAM of each labelled
    class, IG-CAM influence / CamGuide maps when the model has them, the
    seed and, with ``refine``, the refined label map; see
    :meth:`mmwsss.visualization.WSSSVisualizer.cam_panels`) go to every vis
    backend of the runner's visualizer, named ``cam_<image stem>`` with
    the iteration as step: ``LocalVisBackend`` writes
    ``<work_dir>/<timestamp>/vis_data/vis_image/cam_<stem>_<iter>.png``,
    ``TensorboardVisBackend`` an image series per image. Configure the
    backends with ``vis_backends`` in the config (see
    ``docs/en/user_guides/visualization.md``).

    The images are the first ``num_images`` (or ``indices``) of a
    dataloader's dataset, loaded with the test pipeline and without masks
    (:func:`mmwsss.apis.pseudo_labels.dataset_cfg_for_split`), so they are
    the same at every step; their labels are the dataset's. The model runs
    in eval mode with ``test_cfg`` overrides (single scale, no flip by
    default: cheap) and the random generators are left as they were, so
    the training run is unchanged. Only the main process draws.

    Example::

        custom_hooks = [
            dict(type='SafeCheckpointHook'),
            dict(type='RNGStateHook'),
            dict(type='CAMVisualizationHook', interval=100, num_images=4)
        ]
        vis_backends = [dict(type='LocalVisBackend'),
                        dict(type='TensorboardVisBackend')]
        visualizer = dict(type='WSSSVisualizer', vis_backends=vis_backends,
                          name='visualizer')

    Args:
        interval (int): Draw every this many iterations (and after the
            last one). Defaults to 100.
        num_images (int): Number of images (the first ones). Defaults to 4.
        indices (Sequence[int], optional): Dataset indices instead.
        split (str): ``'train'``, ``'val'``, ``'test'``, or ``'auto'``
            (default: test, else val, else train dataloader).
        test_cfg (dict, optional): Overrides of ``model.test_cfg`` while
            drawing. Defaults to ``dict(scales=(1.0, ), flip=False)``.
        refine (str): Refined label panel, as
            :func:`mmwsss.apis.inference_cam`; ``'none'`` (default) skips
            it (a DenseCRF per image and step costs time).
        draw_at_end (bool): Also draw after the last iteration. Defaults
            to True.
    """
    priority = 'LOW'

    def __init__(self,
                 interval: int = 100,
                 num_images: int = 4,
                 indices: Optional[Sequence[int]] = None,
                 split: str = 'auto',
                 test_cfg: Optional[dict] = None,
                 refine: str = 'none',
                 draw_at_end: bool = True) -> None:
        from mmwsss.apis.inference import CAM_REFINE_CHOICES
        if int(interval) != interval or interval < 1:
            raise ValueError(f'interval must be >= 1, got {interval}')
        if split not in SPLITS:
            raise ValueError(f'split must be one of {SPLITS}, got {split!r}')
        if refine not in CAM_REFINE_CHOICES:
            raise ValueError(f'refine must be one of {CAM_REFINE_CHOICES}, '
                             f'got {refine!r}')
        if indices is None and (int(num_images) != num_images
                                or num_images < 1):
            raise ValueError(f'num_images must be >= 1, got {num_images}')
        self.interval = int(interval)
        self.num_images = int(num_images)
        self.indices = None if indices is None else [int(i) for i in indices]
        self.split = split
        self.test_cfg = dict(scales=(1.0, ), flip=False) \
            if test_cfg is None else dict(test_cfg)
        self.refine = refine
        self.draw_at_end = bool(draw_at_end)
        self.dataset = None
        self._drawn_at = -1

    # ------------------------------------------------------------------
    def _resolve_split(self, cfg) -> str:
        if self.split != 'auto':
            return self.split
        for split in ('test', 'val', 'train'):
            loader = cfg.get(f'{split}_dataloader', None)
            if loader and loader.get('dataset', None) is not None:
                return split
        raise ValueError('CAMVisualizationHook: the config has no '
                         'dataloader with a dataset')

    def _build_dataset(self, runner):
        from mmwsss.apis.pseudo_labels import dataset_cfg_for_split
        from mmwsss.registry import DATASETS
        split = self._resolve_split(runner.cfg)
        ds_cfg = dataset_cfg_for_split(runner.cfg, split)
        with DefaultScope.overwrite_default_scope(
                runner.cfg.get('default_scope', 'mmwsss')):
            dataset = DATASETS.build(ds_cfg)
        n = len(dataset)
        indices = self.indices if self.indices is not None else list(
            range(min(self.num_images, n)))
        bad = [i for i in indices if not 0 <= i < n]
        if bad:
            raise IndexError(f'CAMVisualizationHook: indices {bad} outside '
                             f'the {n} images of the {split} split')
        return dataset, indices, split

    def _visualizer(self, runner):
        from mmwsss.visualization import WSSSVisualizer
        vis = runner.visualizer
        meta = self.dataset.metainfo
        if isinstance(vis, WSSSVisualizer):
            drawer = vis
        else:
            if getattr(self, '_drawer', None) is None:
                self._drawer = WSSSVisualizer(name='cam_visualization_hook')
            drawer = self._drawer
        drawer.set_dataset_meta(
            list(meta['classes']), [list(c) for c in meta['palette']])
        return vis, drawer

    def before_train(self, runner) -> None:
        """Build the image set (main process only)."""
        if not is_main_process():
            return
        self.dataset, self.image_indices, split = self._build_dataset(runner)
        runner.logger.info(
            f'CAMVisualizationHook: {len(self.image_indices)} image(s) of '
            f'the {split} split every {self.interval} iterations')

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        """Draw every ``interval`` iterations."""
        if self.every_n_train_iters(runner, self.interval):
            self.draw(runner)

    def after_train(self, runner) -> None:
        """Draw after the last iteration (unless just done)."""
        if self.draw_at_end:
            self.draw(runner)

    def draw(self, runner) -> None:
        """Draw the images at the current iteration and log them."""
        from mmwsss.apis.inference import _test_cfg, cam_result
        from mmwsss.apis.pseudo_labels import read_rgb
        from .influence_hook import preserved_rng_state
        if not is_main_process() or self.dataset is None:
            return
        step = runner.iter + 1 if runner.iter < runner.max_iters \
            else runner.iter
        if step == self._drawn_at:
            return
        self._drawn_at = step
        model = runner.model.module if is_model_wrapper(runner.model) \
            else runner.model
        keys = [k for k in self.test_cfg if k not in model.test_cfg]
        if keys:
            raise KeyError(f'CAMVisualizationHook test_cfg keys {keys} are '
                           'not in the model test_cfg')
        vis, drawer = self._visualizer(runner)
        scope = runner.cfg.get('default_scope', 'mmwsss')
        with preserved_rng_state(), DefaultScope.overwrite_default_scope(
                scope), _test_cfg(model, **copy.deepcopy(self.test_cfg)):
            for idx in self.image_indices:
                data = pseudo_collate([self.dataset.prepare_data(idx)])
                sample = cam_result(model, data, self.refine)
                path = sample.metainfo['img_path']
                stem = osp.splitext(osp.basename(path))[0]
                picture = drawer.draw_cam_sample(read_rgb(path), sample)
                vis.add_image(f'cam_{stem}', picture, step=step)
