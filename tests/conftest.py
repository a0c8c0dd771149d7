"""Shared fixtures. Tests import helpers as ``tests.onnx_check``; the repository root is on sys.path."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

FIXTURES = ROOT / "fixtures"
ONNX_FIXTURES = sorted(p for p in (FIXTURES / "onnx").rglob("*.onnx"))


@pytest.fixture
def fixture_models() -> list[Path]:
    return ONNX_FIXTURES

COUNTS_DIR = ROOT / "build" / "test-counts"


def pytest_sessionstart(session):
    if not hasattr(session.config, "workerinput"):  # the controller, not an xdist worker
        for f in COUNTS_DIR.glob("*.json") if COUNTS_DIR.exists() else []:
            f.unlink()


def pytest_terminal_summary(terminalreporter):
    import json

    skipped = len(terminalreporter.stats.get("skipped", []))
    terminalreporter.write_line(f"skipped tests: {skipped}")
    files = sorted(COUNTS_DIR.glob("onnx_node_*.json")) if COUNTS_DIR.exists() else []
    if not files:
        return
    tot = {"cases": 0, "ref": 0, "roundtrip": 0, "both": 0}
    for f in files:
        for k, v in json.loads(f.read_text()).items():
            tot[k] += v
    terminalreporter.write_line(
        f"ONNX node tests: {tot['cases']} cases run; reference interpreter passes {tot['ref']}, "
        f"ONNX -> IR -> ONNX in onnxruntime passes {tot['roundtrip']}, both {tot['both']}")
