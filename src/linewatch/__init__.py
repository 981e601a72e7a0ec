"""linewatch: watch a production line."""

__version__ = "0.1.0"
