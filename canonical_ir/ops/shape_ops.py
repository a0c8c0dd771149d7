"""shape_ops ops: schema, shape/dtype inference and numpy reference kernels."""
from __future__ import annotations

import numpy as np

from convertkit.canonical_ir.ops.registry import register, same_as  # noqa: F401
