"""Graph passes: each a small named function ``fn(graph) -> bool`` (True if it changed anything).

A pipeline is a list of passes run in a fixed order, repeated until none changes the graph.
"""
from convertkit.canonical_ir.passes.infer import infer_shapes  # noqa: F401
from convertkit.canonical_ir.passes.fold import fold_constants  # noqa: F401
from convertkit.canonical_ir.passes.cleanup import remove_dead_code, remove_identities  # noqa: F401
from convertkit.canonical_ir.passes.manager import Pass, PassManager, NORMALIZE  # noqa: F401
