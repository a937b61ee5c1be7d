# Copyright (c) mmwsss contributors.
"""Keep freed memory in the process heap during long CPU inference loops.

glibc's ``malloc`` serves every request at or above its mmap threshold
(128 KiB at start, raised at run time up to 32 MiB) with fresh pages from
``mmap`` and hands them back to the kernel at ``free``. A CNN forward on
a CPU allocates and frees the same large activations image after image,
so every image pays for its activations' pages again: one minor page
fault (and a page zeroed by the kernel) per 4 KiB. For the demo
EfficientNet-Lite0 CAM with 4 scales + flip on a 512 x 384 image this was
0.4-0.9 M page faults per image and 1.5x (one thread) to 2.3x (two
threads) of the forward time (``benchmarks/bench_pseudo_labels.py``
prints the split); ``tools/test.py`` of the demo CAM (4 scales + flip) on
20 images of 512 x 512 ran 2.2x faster with it (29-32 s against 69-70 s,
the same mIoU). PyTorch's CPU tuning guide answers the same problem
with jemalloc / tcmalloc preloaded; :func:`reuse_heap` gets the effect
with glibc's own knobs, inside the process, with nothing to install:

- ``M_MMAP_MAX = 0``: no request is served by ``mmap``; everything comes
  from the heap (``brk``), where freed blocks are reused by the next image;
- ``M_TRIM_THRESHOLD`` = 2 GiB - 1: the free top of the heap is not given
  back after every image.

The price is memory: the heap stays at the loop's peak plus its
fragmentation, which grows with the mix of image sizes until it levels
off (after 20-40 images here). Measured with one thread, 4 scales + flip:

- one size, 512 x 384 (``bench_pseudo_labels.py``): peak resident memory
  1.49 GiB for a labelling process with ``reuse_heap``, 1.12 GiB for the
  reference loop without it;
- the PASCAL VOC shapes (``bench_heap_reuse.py``, 16 images): 3.3 GiB
  against 2.0 GiB, for 1.68x the speed;
- sizes uniform in 250-500 px (``bench_heap_reuse.py --sizes random
  --images 40 --reps 1``): 4.9 GiB against 3.2 GiB, for 1.40x the speed;
- ``tools/test.py`` above: 2.4 GiB instead of 1.9 GiB.

With many processes (``make_pseudo_labels --procs auto`` on a large
machine) multiply by their number; ``--no-reuse-heap`` (or fewer
processes) when memory is short. On exit the glibc defaults are set again
(at most 65536 mmaps, trim at 128 KiB) and ``malloc_trim(0)`` returns the
free memory.
One difference remains after the context: setting any of these knobs
turns off glibc's dynamic mmap threshold for the rest of the process (it
stays at the value it had reached). Forked children inherit the settings
that hold when they are forked.

Elsewhere than glibc (macOS, musl) the context does nothing.
"""
import ctypes
import ctypes.util
import platform
from contextlib import contextmanager
from typing import Iterator, Optional

# glibc's mallopt parameter numbers (malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
# glibc's defaults (malloc.c: DEFAULT_TRIM_THRESHOLD, DEFAULT_MMAP_MAX)
DEFAULT_TRIM_THRESHOLD = 128 * 1024
DEFAULT_MMAP_MAX = 65536
KEEP_TRIM_THRESHOLD = 2**31 - 1  # mallopt takes an int

_libc: Optional[ctypes.CDLL] = None


def _glibc() -> Optional[ctypes.CDLL]:
    """The C library when it is glibc with ``mallopt``, else None."""
    global _libc
    if _libc is None:
        if platform.libc_ver()[0] != 'glibc':
            return None
        try:
            lib = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
            lib.mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
            lib.mallopt.restype = ctypes.c_int
            lib.malloc_trim.argtypes = (ctypes.c_size_t, )
            lib.malloc_trim.restype = ctypes.c_int
        except (OSError, AttributeError):
            return None
        _libc = lib
    return _libc


def heap_reuse_supported() -> bool:
    """Whether :func:`reuse_heap` has an effect here (glibc)."""
    return _glibc() is not None


@contextmanager
def reuse_heap(enabled: bool = True) -> Iterator[bool]:
    """Serve all allocations from the heap and keep freed memory there.

    See the module docstring for why and what it costs. Not nested-safe:
    the inner exit restores the defaults.

    Args:
        enabled (bool): False makes the context a no-op (the
            ``--no-reuse-heap`` switch of ``tools/make_pseudo_labels.py``
            and ``tools/test.py``).

    Yields:
        bool: Whether the settings are in force (False when disabled or
        not on glibc).
    """
    lib = _glibc() if enabled else None
    if lib is None:
        yield False
        return
    ok = bool(lib.mallopt(M_MMAP_MAX, 0)) and bool(
        lib.mallopt(M_TRIM_THRESHOLD, KEEP_TRIM_THRESHOLD))
    try:
        yield ok
    finally:
        lib.mallopt(M_MMAP_MAX, DEFAULT_MMAP_MAX)
        lib.mallopt(M_TRIM_THRESHOLD, DEFAULT_TRIM_THRESHOLD)
        lib.malloc_trim(0)
