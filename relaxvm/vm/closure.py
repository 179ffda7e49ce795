"""VMClosure: a VM function with arguments bound last (TVM's ``BindLastArgs``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class VMClosure:
    """A callable VM function value; ``captured`` arguments are appended after call-time ones.

    ``impl`` is the translated VM function (or another closure, or a Python callable).
    """

    __slots__ = ("func_name", "impl", "captured")

    def __init__(self, func_name: str, impl: Callable[..., Any], captured: tuple = ()) -> None:
        self.func_name = func_name
        self.impl = impl
        self.captured = captured

    def __call__(self, *args: Any) -> Any:
        return self.impl(*args, *self.captured)

    def __repr__(self) -> str:
        extra = f", {len(self.captured)} captured" if self.captured else ""
        return f"<VMClosure {self.func_name}{extra}>"


def callable_name(fn: Any) -> str:
    """The symbol to show for a callee: VM function name, closure name or Python name."""
    if isinstance(fn, VMClosure):
        return fn.func_name
    name = getattr(fn, "vm_name", None)
    if name is not None:
        return name
    return getattr(fn, "__name__", type(fn).__name__)
