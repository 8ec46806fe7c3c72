"""reconciler: git-driven configuration for fleets of Linux servers."""

__version__ = "0.1.0"
