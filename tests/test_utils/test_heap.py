# Copyright (c) mmwsss contributors.
"""Tests of :mod:`mmwsss.utils.heap`: page faults of a re-allocation.

A 64 MiB block is above glibc's largest mmap threshold (32 MiB), so by
default every allocation of it maps fresh pages and touching them costs
one minor page fault per 4 KiB page; inside :func:`reuse_heap` the second
allocation reuses the heap memory freed by the first and faults (almost)
never. The fault counts come from ``getrusage``, independent of the code.
They are measured in a fresh interpreter: in a long test process the heap
may already hold 64 MiB of free, resident memory from earlier tests,
which would serve the block without faults whatever the settings.
"""
import json
import subprocess
import sys
import textwrap

import pytest

from mmwsss.utils.heap import heap_reuse_supported

PAGES = (64 << 20) // 4096

pytestmark = pytest.mark.skipif(
    not heap_reuse_supported(), reason='glibc malloc only')

MEASURE = textwrap.dedent('''
    import ctypes, ctypes.util, json, resource, sys
    from mmwsss.utils.heap import reuse_heap

    NBYTES = 64 << 20
    lib = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
    lib.malloc.argtypes = (ctypes.c_size_t, )
    lib.malloc.restype = ctypes.c_void_p
    lib.free.argtypes = (ctypes.c_void_p, )

    def second_allocation_faults():
        # plain malloc + memset (numpy would ask for transparent huge
        # pages: one fault per 2 MiB)
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

    out = {'before': second_allocation_faults()}
    enabled = sys.argv[1] == 'on'
    with reuse_heap(enabled) as on:
        out['on'] = on
        second_allocation_faults()  # the first use grows the heap
        out['inside'] = second_allocation_faults()
    out['after'] = second_allocation_faults()
    print(json.dumps(out))
''')


def measure(enabled: bool) -> dict:
    proc = subprocess.run(
        [sys.executable, '-c', MEASURE, 'on' if enabled else 'off'],
        capture_output=True,
        text=True,
        check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_freed_memory_is_reused_inside_and_returned_after():
    got = measure(True)
    assert got['on']
    assert got['before'] > PAGES // 2  # glibc default: fresh mmap pages
    assert got['inside'] < PAGES // 20
    # defaults are back: the block is mmap'ed (and unmapped) again
    assert got['after'] > PAGES // 2


def test_disabled_is_a_no_op():
    got = measure(False)
    assert not got['on']
    assert got['inside'] > PAGES // 2
