"""xpubench: the framework-agnostic harness (timing, results, reports).

Nothing in this package imports torch or jax at import time.
"""

__version__ = "0.1.0"
