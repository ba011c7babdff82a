"""Running cases in supervised worker processes: the parent side and the worker loop."""
