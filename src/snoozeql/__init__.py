"""SnoozeQL: one control plane for every database a team runs."""

__version__ = "0.1.0"
