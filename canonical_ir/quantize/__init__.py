"""int8 quantization, defined once for every backend: TFLite's integer semantics in the canonical IR.

A quantized tensor is an integer tensor with ``Tensor.quant`` set; a quantized op is the same canonical
op with quantized inputs and outputs, and its meaning is that of TFLite's reference integer kernel for
the op (which TFLite Micro and CMSIS-NN share). Importing this package attaches those integer kernels to
the op schemas (``OpSchema.qkernel``); the interpreter runs them.

- :mod:`.fixedpoint`: the integer primitives (QuantizeMultiplier, MultiplyByQuantizedMultiplier,
  gemmlowp's fixed-point exp and reciprocal ...).
- :mod:`.base`: :class:`QType`, activation ranges, requantization.
- ``kernels_*``: one integer kernel per canonical op.
- :mod:`.calibration`, :mod:`.ptq`, :mod:`.report`, :mod:`.data`: post-training quantization
  (``calibrate``, ``quantize_graph``, ``quantization_report``, ``load_calibration_data``); imported
  lazily, since they use the interpreter.
"""
from __future__ import annotations

import importlib
from typing import Any

from convertkit.canonical_ir.quantize import (  # noqa: F401  (imported to register the integer kernels)
    kernels_activation,
    kernels_conv,
    kernels_elementwise,
    kernels_movement,
    kernels_pool,
)
from convertkit.canonical_ir.quantize.base import QType  # noqa: F401

_LAZY = {
    "calibrate": "calibration", "Ranges": "calibration",
    "quantize_graph": "ptq", "choose_qparams": "ptq",
    "quantization_report": "report",
    "load_calibration_data": "data",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def quantized_ops() -> list[str]:
    """Canonical ops that have an integer kernel."""
    from convertkit.canonical_ir.ops import all_schemas
    return [name for name, s in all_schemas().items() if s.qkernel is not None]
