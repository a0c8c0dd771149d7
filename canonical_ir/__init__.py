"""The canonical IR: graph, dtypes, op set with reference kernels, interpreter and passes.

Imports no frontend, backend or CLI code.
"""
from convertkit.canonical_ir.graph import Graph, Node, QuantParams, Tensor  # noqa: F401
from convertkit.canonical_ir import ops  # noqa: F401  (registers the op set)
