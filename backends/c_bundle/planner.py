"""The arena planner: one offset per buffer so that buffers alive at the same time never overlap.

A buffer lives from the step that writes it to the last step that reads it (steps are nodes in
execution order; graph inputs are written before step 0, graph outputs are read after the last).
Views (Reshape, Flatten, ...) and in-place kernels share their input's buffer, which the bundle
builder resolves before planning; a kernel's scratch is a buffer alive for its own step only.

Placement is greedy, as TFLite Micro's GreedyMemoryPlanner: largest buffers first, each at the lowest
offset that does not overlap a placed buffer whose lifetime intersects its own. A few orders are
tried and the smallest arena kept. The lower bound is the largest total size of buffers alive at any
one step: no placement of these lifetimes can use less.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

ALIGN = 16
"""Byte alignment of every buffer (enough for int32/float loads and 128-bit vector code)."""


@dataclass(frozen=True)
class Buffer:
    key: str
    nbytes: int
    first: int
    last: int

    def overlaps_in_time(self, other: "Buffer") -> bool:
        return self.first <= other.last and other.first <= self.last


@dataclass(frozen=True)
class MemoryPlan:
    offsets: dict[str, int]
    arena_bytes: int
    lower_bound: int
    """Largest sum of (aligned) buffer sizes live at one step."""


def align(n: int, to: int = ALIGN) -> int:
    return (n + to - 1) // to * to


def lower_bound(buffers: Sequence[Buffer]) -> int:
    if not buffers:
        return 0
    events: dict[int, int] = {}
    for b in buffers:
        events[b.first] = events.get(b.first, 0) + align(b.nbytes)
        events[b.last + 1] = events.get(b.last + 1, 0) - align(b.nbytes)
    best = cur = 0
    for step in sorted(events):
        cur += events[step]
        best = max(best, cur)
    return best


def _place(buffers: Sequence[Buffer], key: Callable[[Buffer], tuple]) -> tuple[dict[str, int], int]:
    placed: list[tuple[Buffer, int]] = []
    offsets: dict[str, int] = {}
    end = 0
    for b in sorted(buffers, key=key):
        size = align(b.nbytes)
        busy = sorted((off, off + align(p.nbytes)) for p, off in placed if p.overlaps_in_time(b))
        off = 0
        for lo, hi in busy:
            if off + size <= lo:
                break
            off = max(off, hi)
        placed.append((b, off))
        offsets[b.key] = off
        end = max(end, off + size)
    return offsets, end


ORDERS: tuple[Callable[[Buffer], tuple], ...] = (
    lambda b: (-b.nbytes, b.first, b.key),                    # TFLite Micro's: largest first
    lambda b: (-(b.last - b.first), -b.nbytes, b.key),        # longest-lived first
    lambda b: (-b.nbytes * (b.last - b.first + 1), b.key),    # largest area first
    lambda b: (b.first, -b.nbytes, b.key),                    # in execution order
)


def plan(buffers: Sequence[Buffer]) -> MemoryPlan:
    """Offsets for ``buffers``: the smallest arena over the placement orders in :data:`ORDERS`."""
    best: tuple[dict[str, int], int] | None = None
    for order in ORDERS:
        offsets, size = _place(buffers, order)
        if best is None or size < best[1]:
            best = (offsets, size)
    offsets, size = best if best is not None else ({}, 0)
    return MemoryPlan(offsets, size, lower_bound(buffers))


def check_plan(buffers: Sequence[Buffer], memory: MemoryPlan) -> None:
    """Raise AssertionError if two buffers alive at the same step overlap (a self-check the bundle
    builder runs on every plan: a wrong plan would corrupt activations silently)."""
    for i, a in enumerate(buffers):
        oa = memory.offsets[a.key]
        assert oa + a.nbytes <= memory.arena_bytes
        for b in buffers[i + 1:]:
            if a.overlaps_in_time(b):
                ob = memory.offsets[b.key]
                assert oa + a.nbytes <= ob or ob + b.nbytes <= oa, f"{a.key} and {b.key} overlap"
