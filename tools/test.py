# Copyright (c) mmwsss contributors.
"""Test (evaluate) a checkpoint with an mmwsss (or MMSeg) config."""
import argparse
import os
import os.path as osp

from mmengine.config import Config, DictAction


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test a segmentor')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save logs and metrics')
    parser.add_argument(
        '--out',
        type=str,
        help='dump predicted index masks (IoUMetric output_dir) to DIR')
    parser.add_argument(
        '--show-dir', help='directory where painted images will be saved')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings in the config, key=value')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument(
        '--channels-last',
        action='store_true',
        help='channels-last weights (ChannelsLastHook)')
    parser.add_argument(
        '--no-reuse-heap',
        action='store_true',
        help='leave glibc malloc as it is (default: while testing, every '
        'allocation comes from the heap and freed memory stays there for '
        'the next batch; see mmwsss.utils.heap)')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def main() -> None:
    args = parse_args()
    # The heavy imports come after parsing: `-h` (which mim runs before
    # every `mim train/test`) answers in a second.
    from mmengine.runner import Runner

    from mmwsss.registry import RUNNERS
    from mmwsss.utils import setup_cpu_distributed, teardown_distributed
    from mmwsss.utils.heap import reuse_heap
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = args.checkpoint
    if args.channels_last:
        from mmwsss.engine.hooks import enable_channels_last
        enable_channels_last(cfg)
    if args.show_dir:
        hooks = cfg.default_hooks
        if 'visualization' in hooks:
            hooks.visualization.draw = True
            hooks.visualization.interval = 1
        cfg.visualizer['save_dir'] = args.show_dir
    if args.out is not None:
        cfg.test_evaluator['output_dir'] = args.out
        cfg.test_evaluator['keep_results'] = True
    # --launcher pytorch without CUDA (gloo): see mmwsss/utils/dist.py
    setup_cpu_distributed(cfg)
    if 'runner_type' not in cfg:
        runner = Runner.from_cfg(cfg)
    else:
        runner = RUNNERS.build(cfg)
    with reuse_heap(not args.no_reuse_heap):
        runner.test()
    teardown_distributed()


if __name__ == '__main__':
    main()
