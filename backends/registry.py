"""The frameworks xpubench knows: backend classes found through the entry-point group.

A distribution adds a framework by declaring, in its pyproject.toml::

    [project.entry-points."xpubench.backends"]
    numpy = "my_package.backend:NumpyBackend"

The name is the framework in backend specs (``numpy:cpu:fp32``); the object is a
``xpubench.backends.base.Backend`` subclass. xpubench registers torch and jax the
same way. Loading a class imports its module only, never the framework itself, so
``xpubench list`` stays fast.
"""

from __future__ import annotations

import importlib.metadata as md
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from xpubench.backends.base import Backend

GROUP = "xpubench.backends"


@lru_cache(maxsize=1)
def _load() -> tuple[dict[str, type["Backend"]], dict[str, str]]:
    from xpubench.backends.base import Backend

    classes: dict[str, type[Backend]] = {}
    broken: dict[str, str] = {}
    for ep in md.entry_points(group=GROUP):
        name = ep.name.strip().lower()
        if name in classes or name in broken:
            continue  # the first distribution on the path wins, as for imports
        where = f"{ep.value} from {ep.dist.name if ep.dist else 'an unknown distribution'}"
        try:
            cls = ep.load()
        except Exception as exc:  # a broken plugin must not take the others down
            first = (str(exc).strip().splitlines() or [""])[0]
            broken[name] = f"{where}: {type(exc).__name__}: {first}"[:300]
            continue
        if not (isinstance(cls, type) and issubclass(cls, Backend)):
            broken[name] = f"{where} is not a xpubench Backend subclass"
            continue
        if cls.framework != name:
            broken[name] = f"{where} says its framework is {cls.framework!r}, registered as {name!r}"
            continue
        classes[name] = cls
    return dict(sorted(classes.items())), broken


def backend_classes() -> dict[str, type["Backend"]]:
    """Framework name -> backend class, sorted by name (the same order on every machine)."""
    return _load()[0]


def broken() -> dict[str, str]:
    """Registered names whose class could not be loaded -> why (one line)."""
    return _load()[1]


def reload() -> None:
    """Forget what was found (after installing a backend in this process)."""
    _load.cache_clear()
