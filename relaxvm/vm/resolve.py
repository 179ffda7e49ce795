"""Binding packed-function names to callables when a VM loads, and kernel routing.

Lookup order for a packed function name: the global registry (``vm.builtin.*`` and
``register_func``), then the kernel registry. A kernel call site gets its own router,
which picks the implementation for the device of the call's tensor arguments and caches
it by device type, so routing costs one dict lookup per call.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Callable, Sequence
from typing import Any

from relaxvm.errors import VMError
from relaxvm.tensor import Tensor
from relaxvm.vm.builtins import BIND_VM_ATTR
from relaxvm.vm.registry import get_global_func, list_global_func_names

KERNEL_ATTR = "vm_kernel"


def _kernel_registry() -> Any:
    try:
        from relaxvm.kernels import registry
    except ImportError:
        return None
    return registry


def packed_exists(name: str) -> bool:
    """Whether ``name`` resolves: a vm.builtin, a register_func function or a kernel."""
    if get_global_func(name, allow_missing=True) is not None:
        return True
    registry = _kernel_registry()
    return registry is not None and registry.has_kernel(name)


def close_packed_names(name: str, extra: Sequence[str] = ()) -> str:
    """``"; did you mean a, b?"`` for names close to ``name`` among every packed function,
    kernel and ``extra`` name, or ``""``."""
    candidates = list_global_func_names() + [n for n in extra if n != name]
    registry = _kernel_registry()
    if registry is not None:
        candidates += list(registry.kernel_names())
    close = difflib.get_close_matches(name, candidates, n=3)
    return f"; did you mean {', '.join(close)}?" if close else ""


def resolve_packed(name: str, vm: Any) -> Callable[..., Any]:
    """The callable for packed function ``name``; VMError listing every place looked."""
    fn = get_global_func(name, allow_missing=True)
    if fn is not None:
        return functools.partial(fn, vm) if getattr(fn, BIND_VM_ATTR, False) else fn
    registry = _kernel_registry()
    if registry is not None and registry.has_kernel(name):
        return make_kernel_router(name, vm)
    hint = close_packed_names(name)
    raise VMError(f"VirtualMachine: cannot find packed function {name!r}: it is not a "
                  f"vm.builtin, not registered with register_func, and not a kernel on any "
                  f"device{hint}")


def site_router_factory(vm: Any) -> Callable[[int, tuple], Any]:
    """Per call site: a fresh router for kernel callees, an allocation specialised to its
    constant arguments, or None (call the shared pool entry)."""
    from relaxvm.vm.specialize import specialize

    def make(callee_index: int, words: tuple) -> Any:
        entry = vm._pool[callee_index]
        if entry is None:
            return None
        name = getattr(entry, KERNEL_ATTR, None)
        if name is not None:
            return make_kernel_router(name, vm)
        return specialize(vm.exe.func_table[callee_index].name, words, vm)
    return make


def make_kernel_router(name: str, vm: Any) -> Callable[..., Any]:
    """A callable that runs kernel ``name`` on the device of its first tensor argument."""
    registry = _kernel_registry()
    cache: dict[int, Callable[..., Any]] = {}
    host = vm.devices[-1]
    strict = vm._strict_devices

    def resolve(device_type: int) -> Callable[..., Any]:
        impl = registry.get_kernel(name, device_type)
        cache[device_type] = impl
        return impl

    def route(*args: Any) -> Any:
        dev = host
        for a in args:
            if a.__class__ is Tensor:
                dev = a.device
                break
        impl = cache.get(dev.device_type) or resolve(dev.device_type)
        if strict:
            _check_one_device(name, args, dev)
        try:
            return impl(*args)
        except Exception as exc:
            devices = _tensor_devices(args)
            if len(devices) > 1:
                raise VMError(_mixed_message(name, devices)) from exc
            raise

    setattr(route, KERNEL_ATTR, name)
    route.__name__ = name
    return route


def _tensor_devices(args: Any) -> list[str]:
    seen: list[str] = []
    for a in args:
        items = a if type(a) is tuple else (a,)
        for item in items:
            if item.__class__ is Tensor and str(item.device) not in seen:
                seen.append(str(item.device))
    return seen


def _mixed_message(name: str, devices: list[str]) -> str:
    return (f"kernel {name}: tensor arguments are on different devices ({', '.join(devices)}); "
            f"copy them to one device first (vm.builtin.to_device)")


def _check_one_device(name: str, args: Any, dev: Any) -> None:
    for a in args:
        if a.__class__ is Tensor and a.device is not dev:
            raise VMError(_mixed_message(name, _tensor_devices(args)))
