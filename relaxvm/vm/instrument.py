"""The ``set_instrument`` hook: user code called before and after every Call."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

SKIP_RUN = 1


def make_instrument_hook(vm: Any, instrument: Callable[..., Any]
                         ) -> tuple[Callable[..., Any], list[Any]]:
    """A HOOK for the instrument translation and the list its call sites go into."""
    sites: list[Any] = []

    def hook(site: int, func: Any, args: tuple) -> Any:
        symbol = sites[site].callee_name
        decision = instrument(func, symbol, True, None, *args)
        try:
            skip = int(decision) == SKIP_RUN if decision is not None else False
        except (TypeError, ValueError):
            skip = False
        if skip:
            return None
        result = func(*args)
        instrument(func, symbol, False, result, *args)
        return result

    return hook, sites
