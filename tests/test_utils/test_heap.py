# Copyright (c) mmwsss contributors.
"""Tests of :mod:`mmwsss.utils.heap`: page faults of a re-allocation.

A 64 MiB block is above glibc's largest mmap threshold (32 MiB), so by
default every allocation of it maps fresh pages and touching them costs
one minor page fault per 4 KiB page; inside :func:`reuse_heap` the second
allocation reuses the heap memory freed by the first and faults (almost)
never. The fault counts come from ``getrusage``, independent of the code.
"""
import ctypes
import ctypes.util
import resource

import pytest

from mmwsss.utils.heap import heap_reuse_supported, reuse_heap

NBYTES = 64 << 20
PAGES = NBYTES // 4096

pytestmark = pytest.mark.skipif(
    not heap_reuse_supported(), reason='glibc malloc only')


def _libc():
    lib = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
    lib.malloc.argtypes = (ctypes.c_size_t, )
    lib.malloc.restype = ctypes.c_void_p
    lib.free.argtypes = (ctypes.c_void_p, )
    return lib


def faults_of_second_allocation() -> int:
    """Minor page faults of allocating and touching a block again.

    Plain ``malloc`` + ``memset`` (numpy would ask for transparent huge
    pages, one fault per 2 MiB).
    """
    lib = _libc()
    a = lib.malloc(NBYTES)
    assert a
    ctypes.memset(a, 1, NBYTES)
    lib.free(a)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    b = lib.malloc(NBYTES)
    assert b
    ctypes.memset(b, 2, NBYTES)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    lib.free(b)
    return after - before


def test_freed_memory_is_reused_inside_and_returned_after():
    baseline = faults_of_second_allocation()
    assert baseline > PAGES // 2  # glibc default: fresh mmap pages
    with reuse_heap() as on:
        assert on
        faults_of_second_allocation()  # first use grows the heap
        inside = faults_of_second_allocation()
    assert inside < PAGES // 20
    # defaults are back: the block is mmap'ed (and unmapped) again
    assert faults_of_second_allocation() > PAGES // 2


def test_disabled_is_a_no_op():
    with reuse_heap(enabled=False) as on:
        assert not on
        assert faults_of_second_allocation() > PAGES // 2
