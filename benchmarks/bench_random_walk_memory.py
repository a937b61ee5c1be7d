# Copyright (c) mmwsss contributors.
"""Memory and time of the AffinityNet random walk: sparse vs dense (PSA).

Setting of the CamGuide / IRN issue: a 512 x 512 input at stride 4 gives
128 x 128 = 16384 graph nodes; AffinityNet features have D = 448 channels;
21 VOC classes; radius 5, beta 8, 256 steps.

- sparse: :func:`mmwsss.refine.affinity_random_walk.sparse_transition` +
  :func:`~mmwsss.refine.affinity_random_walk.random_walk` (256 sparse
  products), measured in a fresh subprocess: the increase of the resident
  set size (``ru_maxrss`` peak minus the RSS just before the walk, with
  the features and CAMs already allocated) and the wall time.
- dense: PSA ``infer_aff.py`` (dense ``A ** beta``, column normalisation,
  ``logt = 8`` squarings). At 16384 nodes one matrix is 1 GiB and one
  squaring is ~8.8 TFLOP (minutes on a CPU), so it is *computed*: the peak
  holds three matrices (``A ** beta``, ``T`` and the product ``T @ T``).
  The formula is checked by measuring the dense walk on a 48 x 48 grid
  (2304 nodes) in a subprocess, where the sparse walk is also compared
  with it numerically.

Prints ``name: value`` lines; run from the repository root::

    OMP_NUM_THREADS=1 python benchmarks/bench_random_walk_memory.py
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

MIB = 1024.0 * 1024.0


def _rss_mib() -> float:
    """Current resident set size (Linux ``/proc/self/statm``)."""
    with open('/proc/self/statm') as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf('SC_PAGE_SIZE') / MIB


def _peak_mib() -> float:
    """Peak resident set size of this process (``ru_maxrss`` is KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def child_sparse(side: int, dim: int, classes: int, radius: int, beta: float,
                 steps: int) -> dict:
    import torch

    from mmwsss.refine.affinity_random_walk import (random_walk,
                                                    sparse_transition)
    torch.manual_seed(0)
    feats = torch.randn(dim, side, side) * 0.1
    cams = torch.rand(classes, side, side)
    # warm up the sparse kernels on a tiny problem (allocator, dispatch)
    random_walk(sparse_transition(feats[:, :8, :8]), cams[:, :8, :8], 2)
    base = _rss_mib()
    t0 = time.perf_counter()
    trans = sparse_transition(feats, radius=radius, beta=beta)
    t1 = time.perf_counter()
    out = random_walk(trans, cams, steps)
    t2 = time.perf_counter()
    return dict(
        nodes=side * side,
        nnz=int(trans.values().numel()),
        base_mib=base,
        peak_mib=_peak_mib(),
        build_s=t1 - t0,
        walk_s=t2 - t1,
        finite=bool(torch.isfinite(out).all()))


def child_dense(side: int, dim: int, classes: int, radius: int, beta: float,
                logt: int) -> dict:
    import torch

    from mmwsss.refine.affinity_random_walk import (random_walk,
                                                    sparse_transition)
    torch.manual_seed(0)
    feats = torch.randn(dim, side, side) * 0.1
    cams = torch.rand(classes, side, side)
    n = side * side
    # the sparse result first (small), for the numerical comparison
    sparse_out = random_walk(
        sparse_transition(feats, radius=radius, beta=beta), cams, 2**logt)
    base = _rss_mib()
    t0 = time.perf_counter()
    # PSA infer_aff.py: dense affinity matrix (sparse -> to_dense), power,
    # column normalisation, logt squarings, cam_vec @ T
    aff = sparse_transition(feats, radius=radius, beta=1.0, layout='coo')
    aff = aff.to_dense()
    aff = aff / aff.diagonal()[None, :]  # back to A (A_ii = 1)
    aff_mat = torch.pow(aff, beta)
    del aff
    trans_mat = aff_mat / torch.sum(aff_mat, dim=0, keepdim=True)
    for _ in range(logt):
        trans_mat = torch.matmul(trans_mat, trans_mat)
    dense_out = torch.matmul(cams.view(classes, -1), trans_mat)
    t1 = time.perf_counter()
    diff = float((dense_out.view_as(cams) - sparse_out).abs().max())
    return dict(
        nodes=n,
        matrix_mib=n * n * 4 / MIB,
        base_mib=base,
        peak_mib=_peak_mib(),
        time_s=t1 - t0,
        max_abs_diff_vs_sparse=diff)


def _run_child(kind: str, **kwargs) -> dict:
    cmd = [
        sys.executable,
        os.path.abspath(__file__), '--child', kind, '--params',
        json.dumps(kwargs)
    ]
    env = dict(os.environ)
    env.setdefault('OMP_NUM_THREADS', '1')
    env.setdefault('MKL_NUM_THREADS', '1')
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env['PYTHONPATH'] = root + os.pathsep + env.get('PYTHONPATH', '')
    res = subprocess.run(
        cmd, capture_output=True, text=True, env=env, timeout=110)
    if res.returncode != 0:
        raise RuntimeError(f'{kind} child failed:\n{res.stderr}')
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--child', choices=('sparse', 'dense'))
    parser.add_argument('--params', default='{}')
    parser.add_argument('--side', type=int, default=128)
    parser.add_argument('--dim', type=int, default=448)
    parser.add_argument('--classes', type=int, default=21)
    parser.add_argument('--dense-side', type=int, default=48)
    args = parser.parse_args(argv)
    if args.child:
        params = json.loads(args.params)
        fn = child_sparse if args.child == 'sparse' else child_dense
        print(json.dumps(fn(**params)))
        return

    radius, beta, logt = 5, 8.0, 8
    t0 = time.perf_counter()
    sp = _run_child(
        'sparse',
        side=args.side,
        dim=args.dim,
        classes=args.classes,
        radius=radius,
        beta=beta,
        steps=2**logt)
    dn = _run_child(
        'dense',
        side=args.dense_side,
        dim=args.dim,
        classes=args.classes,
        radius=radius,
        beta=beta,
        logt=logt)
    n = sp['nodes']
    matrix_mib = n * n * 4 / MIB
    side_in = args.side * 4
    small_work = dn['peak_mib'] - dn['base_mib']
    print(f'input: {side_in}x{side_in} (stride 4 -> {args.side}x{args.side}'
          f' = {n} nodes), D={args.dim}, {args.classes} classes, radius '
          f'{radius}, beta {beta:g}, {2**logt} steps')
    print(f'torch_threads: {os.environ.get("OMP_NUM_THREADS", "default")}')
    print(f'sparse_nnz_{side_in}: {sp["nnz"]} '
          f'({sp["nnz"] / n:.1f} per node)')
    print(f'sparse_rw_build_s_{side_in}: {sp["build_s"]:.2f}')
    print(f'sparse_rw_walk_s_{side_in}: {sp["walk_s"]:.2f}')
    print(f'sparse_rw_peak_rss_increase_{side_in}: '
          f'{sp["peak_mib"] - sp["base_mib"]:.1f} MiB (measured)')
    print(f'sparse_rw_process_peak_rss_{side_in}: {sp["peak_mib"]:.1f} MiB '
          '(measured; torch runtime + inputs included)')
    print(f'dense_matrix_{side_in}: {matrix_mib:.1f} MiB per (n, n) float32 '
          'matrix (computed)')
    print(f'dense_psa_peak_{side_in}: {3 * matrix_mib:.1f} MiB (computed: '
          'A^beta, T and T@T alive during a squaring)')
    print(f'dense_psa_flop_{side_in}: {logt * 2 * n**3 / 1e12:.1f} TFLOP '
          f'({logt} squarings, computed)')
    print(f'dense_check_nodes: {dn["nodes"]} ({args.dense_side}x'
          f'{args.dense_side} grid)')
    print(f'dense_check_peak_rss_increase: {small_work:.1f} MiB (measured) '
          f'vs {3 * dn["matrix_mib"]:.1f} MiB (3 matrices, computed)')
    print(f'dense_check_time_s: {dn["time_s"]:.2f}')
    print(f'dense_check_max_abs_diff_vs_sparse: '
          f'{dn["max_abs_diff_vs_sparse"]:.2e}')
    print(f'memory_ratio_dense_over_sparse_{side_in}: '
          f'{3 * matrix_mib / max(sp["peak_mib"] - sp["base_mib"], 1):.1f}')
    print(f'rw_peak_memory_{side_in}: '
          f'{sp["peak_mib"] - sp["base_mib"]:.1f} MiB (goal <= 2048)')
    print(f'bench_wall_s: {time.perf_counter() - t0:.1f}')


if __name__ == '__main__':
    main()
