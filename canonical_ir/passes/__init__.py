"""Graph passes: each a small named function ``fn(graph) -> bool`` (True if it changed anything).

A pipeline is a list of passes run in a fixed order, repeated until none changes the graph. Local
rewrites are rules (``rewrite.Rule``: pattern, a check that explains a non-match, rewrite) applied to a
fixed point by ``rewrite.apply_rules`` in time linear in the graph size.
"""
from convertkit.canonical_ir.passes.infer import infer_shapes  # noqa: F401
from convertkit.canonical_ir.passes.fold import fold_constants  # noqa: F401
from convertkit.canonical_ir.passes.cleanup import remove_dead_code, remove_identities  # noqa: F401
from convertkit.canonical_ir.passes.manager import Pass, PassManager, NORMALIZE  # noqa: F401
from convertkit.canonical_ir.passes.rewrite import Rewriter, Rule, apply_rules, explain  # noqa: F401
from convertkit.canonical_ir.passes.simplify import simplify_shapes  # noqa: F401
from convertkit.canonical_ir.passes.transpose import count_transposes, optimize_transposes  # noqa: F401
from convertkit.canonical_ir.passes.layout import convert_layout, set_io_layouts  # noqa: F401
from convertkit.canonical_ir.passes.legalize import (  # noqa: F401
    Capabilities, LegalizeError, legalize, rejected)
from convertkit.canonical_ir.passes.fusion import fold_batch_norms, fold_pads  # noqa: F401
from convertkit.canonical_ir.passes.cse import eliminate_common_subexpressions  # noqa: F401
