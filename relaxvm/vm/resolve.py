"""Binding packed-function names to callables when a VM loads, and kernel routing.

Lookup order for a packed function name: the global registry (``vm.builtin.*`` and
``register_func``), then the kernel registry. A kernel call site gets its own router,
which picks the implementation for the device of the call's tensor arguments and caches
it by device type, so routing costs one dict lookup per call.

A VM on one device whose every tensor must live there needs no routing at all: when
:func:`direct_kernel_functions` proves that for a VM function, each of its kernel call sites
is bound straight to the implementation for that device type (a router frame costs
~150-250 ns a call), and the VM checks the tensors given to that function instead.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Callable, Sequence
from typing import Any

from relaxvm.errors import KernelNotFoundError, VMError
from relaxvm.tensor import Tensor
from relaxvm.vm import builtins as _builtins
from relaxvm.vm.builtins import BIND_VM_ATTR
from relaxvm.vm.bytecode import ArgKind, Opcode, decode_arg
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


def site_router_factory(vm: Any) -> Callable[[int, int, tuple], Any]:
    """Per call site (VM function, callee, argument words): the kernel implementation or a
    fresh router for kernel callees (:func:`bind_kernel`), a builtin specialised to its
    constant arguments, or None (call the shared pool entry)."""
    from relaxvm.vm.specialize import specialize

    def make(func_index: int, callee_index: int, words: tuple) -> Any:
        entry = vm._pool[callee_index]
        if entry is None:
            return None
        name = getattr(entry, KERNEL_ATTR, None)
        if name is not None:
            return bind_kernel(name, vm, func_index)
        return specialize(vm.exe.func_table[callee_index].name, words, vm)
    return make


# Builtins that give a kernel no tensor from outside the VM's devices: they allocate from
# the VM's allocators, pass values through, or return no tensor. Left out on purpose:
# to_device (makes tensors on any device), make_closure, invoke_closure and call_tir_dyn
# (they let VM functions escape to Python, or call callables the VM did not make).
# Held as ids: a register_func callee may be unhashable; builtins live as long as the module.
_DEVICE_LOCAL_BUILTINS = frozenset(map(id, (
    _builtins.alloc_storage, _builtins.alloc_tensor, _builtins.null_value,
    _builtins.alloc_shape_heap, _builtins.memory_manager_clear, _builtins.check_tensor_info,
    _builtins.check_shape_info, _builtins.check_tuple_info, _builtins.check_prim_value_info,
    _builtins.check_func_info, _builtins.match_shape, _builtins.match_prim_value,
    _builtins.make_shape, _builtins.make_prim_value, _builtins.shape_of,
    _builtins.tensor_to_shape, _builtins.reshape, _builtins.copy, _builtins.make_tuple,
    _builtins.tuple_getitem, _builtins.read_if_cond,
)))


def direct_kernel_functions(vm: Any) -> frozenset[int]:
    """The VM functions whose kernel calls can skip routing: every tensor reaching them is
    provably on the VM's one device, given that the VM checks the tensors passed in
    (``vm[name]``, ``set_input``, ``save_function``, ``profile``).

    Nothing qualifies unless the VM has exactly one device (``cpu(0)`` + ``cpu(1)`` keeps
    its routers, which check that a call's tensors share a device; so does ``cuda(0)`` with
    the appended host), and no Call passes a VM function as a value (a closure or function
    value could reach Python and be called around the checks). Then a function qualifies
    when no function it is linked to by calls, in either direction, calls a packed
    function outside the kernels and the device-local builtins (a ``register_func`` callee
    or ``to_device`` may return a tensor from anywhere, and hand it to a caller or, through
    a call, to a callee), and some function so linked calls a kernel.
    """
    if len(set(vm.devices)) != 1:
        return frozenset()
    exe, is_vm, pool = vm.exe, vm._is_vm_func, vm._pool
    kernel = [getattr(entry, KERNEL_ATTR, None) is not None for entry in pool]
    parent = list(range(len(pool)))  # union-find over the call graph

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]  # path halving
            i = parent[i]
        return i

    tainted, with_kernels = set(), set()
    for func, info in enumerate(exe.func_table):
        for pc in range(info.start_instr, info.end_instr) if is_vm[func] else ():
            ins = exe.get_instruction(pc)
            if ins.opcode != Opcode.CALL:
                continue
            if any(kind == ArgKind.FUNC_IDX and is_vm[value]
                   for kind, value in map(decode_arg, ins.args)):
                return frozenset()
            callee = ins.func_idx
            if is_vm[callee]:
                parent[root(callee)] = root(func)
            elif kernel[callee]:
                with_kernels.add(func)
            elif id(pool[callee]) not in _DEVICE_LOCAL_BUILTINS:
                tainted.add(func)
    bad = {root(f) for f in tainted}
    good = {root(f) for f in with_kernels} - bad
    return frozenset(f for f in range(len(pool)) if is_vm[f] and root(f) in good)


def bind_kernel(name: str, vm: Any, func_index: int) -> Callable[..., Any]:
    """The callable for a call site of kernel ``name`` in VM function ``func_index``: the
    implementation for the VM's device type when the function is in
    ``vm._direct_functions`` (see :func:`direct_kernel_functions`), else a router.

    A kernel missing for that device type keeps the router, so the error still comes when
    (and only if) the call runs.
    """
    if func_index in vm._direct_functions:
        try:
            return _kernel_registry().get_kernel(  # type: ignore[no-any-return]
                name, vm.devices[0].device_type)
        except KernelNotFoundError:
            pass
    return make_kernel_router(name, vm)


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
    """VMError unless every tensor argument, tuple members included, is on ``dev``."""
    for a in args:
        if a.__class__ is Tensor:
            if a.device is not dev:
                raise VMError(_mixed_message(name, _tensor_devices(args)))
        elif type(a) is tuple:
            for item in a:
                if item.__class__ is Tensor and item.device is not dev:
                    raise VMError(_mixed_message(name, _tensor_devices(args)))
