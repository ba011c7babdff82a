"""Backends: the Backend interface and registry, and one sub-package per runtime (imported lazily)."""
