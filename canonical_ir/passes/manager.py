"""Pass pipelines: named passes in a fixed order, repeated until the graph stops changing."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from convertkit.canonical_ir.graph import Graph
from convertkit.canonical_ir.passes.cleanup import remove_dead_code, remove_identities
from convertkit.canonical_ir.passes.fold import fold_constants
from convertkit.canonical_ir.passes.infer import infer_shapes
from convertkit.errors import UsageError


@dataclass(frozen=True)
class Pass:
    name: str
    fn: Callable[[Graph], bool]
    doc: str = ""

    @classmethod
    def of(cls, fn: Callable[[Graph], bool]) -> "Pass":
        return cls(fn.__name__, fn, (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else "")


NORMALIZE: list[Pass] = [Pass.of(f) for f in
                         (infer_shapes, fold_constants, remove_identities, remove_dead_code)]
"""Shape/dtype inference, constant folding, Identity/Dropout removal, dead-code removal."""


class PassManager:
    """Runs stages of passes. Each stage repeats its passes in order until none changes the graph.

    ``dump_after`` names a pass whose result is handed to ``on_dump`` every time it runs, and
    ``validate`` checks the IR invariants after every pass (on in tests).
    """

    MAX_ROUNDS = 20

    def __init__(self, stages: Sequence[tuple[str, Sequence[Pass]]], *, dump_after: str | None = None,
                 on_dump: Callable[[str, Graph], None] | None = None, validate: bool = False) -> None:
        self.stages = [(name, list(passes)) for name, passes in stages]
        self.dump_after = dump_after
        self.on_dump = on_dump
        self.validate = validate
        names = self.pass_names()
        if dump_after is not None and dump_after not in names:
            raise UsageError(f"--dump-after {dump_after}: no such pass",
                             hint=f"passes are {', '.join(dict.fromkeys(names))}")

    def pass_names(self) -> list[str]:
        return [p.name for _, passes in self.stages for p in passes]

    def describe(self) -> str:
        lines = []
        for stage, passes in self.stages:
            lines.append(f"{stage}: (repeated until nothing changes)")
            lines.extend(f"  {p.name:<22} {p.doc}" for p in passes)
        return "\n".join(lines)

    def run(self, graph: Graph) -> Graph:
        for stage, passes in self.stages:
            for _ in range(self.MAX_ROUNDS):
                changed = False
                for p in passes:
                    changed |= bool(p.fn(graph))
                    if self.validate:
                        graph.validate()
                if not changed:
                    break
            # a final inference, so every stage hands on a fully typed graph
            infer_shapes(graph)
            # the last round changed nothing, so the graph now is the graph after each of its passes
            if self.on_dump is not None and self.dump_after in (p.name for p in passes):
                self.on_dump(self.dump_after, graph)
        return graph
