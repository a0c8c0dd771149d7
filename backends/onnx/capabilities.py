"""What ONNX at opset N accepts, for legalization.

An op is accepted when the exporter has a handler for it at that opset (the handler spells it in that
opset's form) or ONNX itself has an op of that name at that opset (written as is). Everything spatial
is NCHW (ONNX has no layout attribute; channels-last BatchNormalization is written as Mul and Add),
activations are never fused, and element types are the IR's.
Ops newer than the opset that have no handler (HardSwish before 14, Gelu before 20, ...) are what the
IR's decomposition rules lower.
"""
from __future__ import annotations

from functools import lru_cache

import onnx

from convertkit.backends.onnx import handlers  # noqa: F401  (registers the op handlers)
from convertkit.backends.onnx.registry import find_handler
from convertkit.canonical_ir import dtypes
from convertkit.canonical_ir.ops import all_schemas
from convertkit.canonical_ir.passes.legalize import Capabilities


def onnx_has(op: str, opset: int) -> bool:
    """Whether the default ONNX domain defines ``op`` at ``opset``."""
    try:
        onnx.defs.get_schema(op, opset, "")
        return True
    except Exception:
        return False


ANY_LAYOUT = frozenset({"BatchNormalization"})
"""Written without Transposes in either layout (channels-last BatchNormalization is a Mul and an Add)."""


@lru_cache(maxsize=None)
def capabilities(opset: int) -> Capabilities:
    """The Capabilities of the ONNX backend writing ``opset``."""
    ops = frozenset(op for op in all_schemas() if find_handler(op, opset) is not None or onnx_has(op, opset))
    return Capabilities(name=f"ONNX opset {opset}", ops=ops, layouts=("NCHW",), dtypes=frozenset(dtypes.ALL),
                        any_layout=ANY_LAYOUT, hint="a newer --opset may have them")
