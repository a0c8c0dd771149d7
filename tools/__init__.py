"""Test-and-bench tools (not shipped in the convertkit package)."""
