"""The global registry of packed functions: builtins and user functions by name.

``register_func("my.add")(fn)`` makes ``fn`` callable from bytecode as ``my.add``. A VM
resolves every name once, when it loads an executable; lookups never happen per call.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

_FUNCS: dict[str, Callable[..., Any]] = {}


def register_func(name: str, f: Callable[..., Any] | None = None, override: bool = False
                  ) -> Any:
    """Register ``f`` under ``name``; usable as ``@register_func("name")`` too.

    Registering a taken name raises ValueError unless ``override=True``.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"register_func: name must be a non-empty str, got {name!r}")

    def register(fn: F) -> F:
        if not callable(fn):
            raise TypeError(f"register_func: {name!r} must be callable, got {type(fn).__name__}")
        if name in _FUNCS and not override:
            raise ValueError(f"register_func: {name!r} is already registered; pass "
                             f"override=True to replace it")
        _FUNCS[name] = fn
        return fn

    return register if f is None else register(f)


def get_global_func(name: str, allow_missing: bool = False) -> Callable[..., Any] | None:
    """The function registered as ``name``; None or a LookupError when missing."""
    fn = _FUNCS.get(name)
    if fn is None and not allow_missing:
        close = difflib.get_close_matches(name, list(_FUNCS), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise LookupError(f"get_global_func: no function registered as {name!r}{hint}")
    return fn


def remove_global_func(name: str) -> None:
    """Forget ``name`` (tests use it to clean up)."""
    _FUNCS.pop(name, None)


def list_global_func_names() -> list[str]:
    return sorted(_FUNCS)
