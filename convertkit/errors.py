"""User-facing errors. Every layer may import this module and nothing else from convertkit.

Each error renders as one line: what went wrong, where (file, node or op), and a hint.
"""
from __future__ import annotations


class ConvertError(Exception):
    """Base of every error a user can cause. The CLI prints it as one line and exits 2."""

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None, where: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.where = where

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        if self.hint:
            text += f" (hint: {self.hint})"
        return text


class ModelFileError(ConvertError):
    """A model file is missing, truncated, corrupt, or not of the format it claims to be."""


class UnknownFormatError(ConvertError):
    """The input's format could not be recognised."""


class UnsupportedOpError(ConvertError):
    """One or more ops have no converter, kernel or exporter. Lists every offending node at once."""

    def __init__(self, what: str, missing: dict[str, list[str]], *, hint: str | None = None,
                 where: str | None = None):
        self.missing = {op: list(nodes) for op, nodes in sorted(missing.items())}
        parts = []
        for op, nodes in self.missing.items():
            shown = ", ".join(nodes[:3]) + (f", +{len(nodes) - 3} more" if len(nodes) > 3 else "")
            parts.append(f"{op} x{len(nodes)} ({shown})")
        super().__init__(f"{what}: {'; '.join(parts)}", hint=hint, where=where)


class ShapeError(ConvertError):
    """Shapes or dtypes are inconsistent, or cannot be inferred."""


class UnsafePathError(ConvertError):
    """A model refers to a file outside its own folder."""


class ExportError(ConvertError):
    """The graph cannot be written in the requested format (opset, dtype, layout...)."""


class UsageError(ConvertError):
    """Bad command-line or API arguments."""


class InternalError(Exception):
    """A bug in convertkit: an invariant of the IR was broken. The CLI exits 1."""
