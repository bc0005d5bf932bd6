"""symgrad's version: one place, read by the package and by what keys the build cache."""
__version__ = "0.1.0"
