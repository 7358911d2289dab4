"""Batch tools (CLI commands ``kneeload pfj`` and ``kneeload acwr``) over kneeload.core."""
