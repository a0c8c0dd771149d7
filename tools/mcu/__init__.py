"""Cortex-M build/run/count harness: ``from tools.mcu import mcu``."""
