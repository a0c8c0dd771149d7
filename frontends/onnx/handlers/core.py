"""Constants and other ops that become IR structure rather than IR ops."""
from __future__ import annotations

import numpy as np

from convertkit.frontends.onnx.registry import ConvertContext, converter


@converter("Constant")
def constant(ctx: ConvertContext) -> None:
    """Constant -> a constant tensor under the node's output name (no op in the IR)."""
    a = ctx.attrs
    if "value" in a:
        value = a["value"]
    elif "value_float" in a:
        value = np.array(a["value_float"], np.float32)
    elif "value_floats" in a:
        value = np.array(a["value_floats"], np.float32)
    elif "value_int" in a:
        value = np.array(a["value_int"], np.int64)
    elif "value_ints" in a:
        value = np.array(a["value_ints"], np.int64)
    else:
        raise ctx.error(f"Constant with attribute(s) {sorted(a)} is not supported",
                        hint="only numeric tensor constants are")
    ctx.graph.add_tensor(ctx.outputs[0], value=np.asarray(value))
