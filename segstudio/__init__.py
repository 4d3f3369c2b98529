"""segstudio: annotate and segment image folders, with models that learn from your corrections."""

__version__ = "0.1.0"
