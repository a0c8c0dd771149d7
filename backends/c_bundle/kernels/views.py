"""Ops that only reinterpret their input's bytes (same data, another shape): no code, the output is
the input's buffer (the planner merges them)."""
from convertkit.backends.c_bundle.emit import view_kernel

view_kernel("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Dropout")
