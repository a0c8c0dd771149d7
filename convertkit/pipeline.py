"""The conversion pipeline: named stages of passes between a frontend and a backend.

    load ──▶ normalize ──▶ (optimize, quantize, legalize: per target) ──▶ export

Each stage is a list of named passes (see ``canonical_ir.passes``); ``--print-passes`` lists them and
``--dump-after NAME`` prints the graph after one.
"""
from __future__ import annotations

from typing import Callable

from convertkit.canonical_ir.graph import Graph
from convertkit.canonical_ir.passes import NORMALIZE, Pass, PassManager


def stages_for(target: str | None) -> list[tuple[str, list[Pass]]]:
    """The pass stages run before writing ``target`` (None: just loading)."""
    return [("normalize", list(NORMALIZE))]


def make_manager(target: str | None = None, *, dump_after: str | None = None,
                 on_dump: Callable[[str, Graph], None] | None = None,
                 validate: bool = False) -> PassManager:
    return PassManager(stages_for(target), dump_after=dump_after, on_dump=on_dump, validate=validate)


def normalize(graph: Graph, *, validate: bool = False) -> Graph:
    """Shape inference, constant folding, identity and dead-code removal, to a fixed point."""
    return make_manager(None, validate=validate).run(graph)
