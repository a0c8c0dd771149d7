"""Conformance: the ONNX backend node tests, through the reference interpreter and through the
ONNX -> IR -> ONNX round trip in onnxruntime, each against the case's own expected outputs.

Cases that do not pass yet are listed with their reason in onnx_node_expected_failures.txt; any other
failure is a regression, and a listed case that now passes must be taken off the list. The counts are
printed in the test summary (see conftest.py).
"""
from __future__ import annotations

import json

import pytest

from tests import onnx_node_cases as cases_mod
from tests.conftest import COUNTS_DIR

CHUNKS = 4
MIN_PASSING_BOTH = 600


@pytest.fixture(scope="module")
def all_cases():
    pytest.importorskip("onnxruntime")
    return cases_mod.load_cases()


@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_node_cases(chunk, all_cases):
    expected = cases_mod.read_expected()
    outcomes = [cases_mod.run_case(c) for i, c in enumerate(all_cases) if i % CHUNKS == chunk]
    COUNTS_DIR.mkdir(parents=True, exist_ok=True)
    (COUNTS_DIR / f"onnx_node_{chunk}.json").write_text(json.dumps({
        "cases": len(outcomes),
        "ref": sum(o.ref is None for o in outcomes),
        "roundtrip": sum(o.roundtrip is None for o in outcomes),
        "both": sum(o.ref is None and o.roundtrip is None for o in outcomes)}))
    regressions, stale = [], []
    for o in outcomes:
        way = expected.get(o.name, ("", ""))[0]
        if o.ref and way not in ("ref", "both"):
            regressions.append(f"{o.name} [ref]: {o.ref}")
        if o.roundtrip and way not in ("roundtrip", "both"):
            regressions.append(f"{o.name} [roundtrip]: {o.roundtrip}")
        if way and not o.ref and not o.roundtrip:
            stale.append(o.name)
        elif way == "both" and (not o.ref or not o.roundtrip):
            stale.append(f"{o.name} (now fails only one way)")
    assert not regressions, "regressions:\n" + "\n".join(regressions)
    assert not stale, ("listed as failing but passing now; run `python tests/onnx_node_cases.py "
                       "--write-expected`:\n" + "\n".join(stale))


def test_expected_failures_leave_enough_passing(all_cases):
    """With no regressions, every unlisted case passes both ways: so this bounds the count from below."""
    listed = cases_mod.read_expected()
    assert len(all_cases) - len(listed) >= MIN_PASSING_BOTH
    reasons = [r for _, r in listed.values()]
    assert all(r.strip() for r in reasons), "every listed case needs its reason"
