"""convertkit: convert trained neural networks between formats and down to microcontrollers.

    import convertkit
    graph = convertkit.load("model.onnx")           # any supported format -> canonical IR
    convertkit.save(graph, "out.onnx", format="onnx", opset=17)
    convertkit.convert("model.onnx", to="onnx", output="out.onnx")

Importing convertkit is cheap: frameworks (TensorFlow...) are imported only by the frontend that needs them.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["load", "save", "convert", "Graph", "ConvertError", "__version__"]

if TYPE_CHECKING:
    from convertkit.api import convert, load, save  # noqa: F401
    from convertkit.canonical_ir.graph import Graph  # noqa: F401
    from convertkit.errors import ConvertError  # noqa: F401


def __getattr__(name: str) -> Any:
    # Lazy, so that `import convertkit.errors` from inside canonical_ir stays free of cycles.
    if name in ("load", "save", "convert"):
        from convertkit import api
        return getattr(api, name)
    if name == "Graph":
        from convertkit.canonical_ir.graph import Graph
        return Graph
    if name == "ConvertError":
        from convertkit.errors import ConvertError
        return ConvertError
    raise AttributeError(f"module 'convertkit' has no attribute {name!r}")
