"""The kernel registry: implementations keyed by (op name, device type).

Kernels use destination passing: ``kernel(*inputs, out, *attrs)`` reads its input
Tensors, writes into the preallocated ``out`` (or each Tensor of ``outs``) and returns
None. Every call is positional, so the compiler needs each op's parameter order; it
reads it from :func:`kernel_signature`, which is derived once from the Python signature
of the first registered implementation and enforced on every later one.

Two ways to register:

* ``@register_kernel("add", "cpu")`` on a plain function ``add(a, b, out)``;
* ``@register_template("add")`` on ``add(xp, a, b, out)``, written once over an array
  module. It is registered for every device type, and bound to that device's module
  (NumPy, CuPy) the first time :func:`get_kernel` asks for it. CuPy is therefore
  imported on first use, never when ``relaxvm.kernels`` is imported;
* ``@register_builder("add")`` on ``build(xp) -> kernel``, for hot kernels that bind
  their ufuncs once instead of looking them up per call.

:func:`template_of` gives back the device-generic function behind a registration, so a
test can run a kernel's CUDA branch with a stand-in array module.
"""

from __future__ import annotations

import difflib
import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from relaxvm.devices.device import DEVICE_NAME_TYPES, DEVICE_TYPE_NAMES
from relaxvm.errors import DeviceError, KernelNotFoundError

F = TypeVar("F", bound=Callable[..., Any])

#: Parameter names that mark the destination: one Tensor, or a tuple of Tensors.
OUTPUT_NAMES = ("out", "outs")


class _Required:
    """The default of an attribute the caller must always pass (``kernel_shape``, say)."""

    _instance: _Required | None = None

    def __new__(cls) -> _Required:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "REQUIRED"

    def __reduce__(self) -> str:
        return "REQUIRED"


#: Marks an attribute with no default in :attr:`KernelSignature.attrs`.
REQUIRED = _Required()


@dataclass(frozen=True)
class KernelSignature:
    """The positional layout of a kernel: ``kernel(*inputs, <output>, *attrs)``.

    ``attrs`` maps each attribute name, in call order, to its default value, or to
    :data:`REQUIRED` for an attribute every call must pass (``slice``'s ``starts``).
    """

    inputs: tuple[str, ...]
    output: str
    attrs: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        attrs = [k if v is REQUIRED else f"{k}={v!r}" for k, v in self.attrs.items()]
        return f"({', '.join([*self.inputs, self.output, *attrs])})"


class _Lazy:
    """A registration built for a device's array module on first lookup."""

    __slots__ = ("build",)

    def __init__(self, build: Callable[[Any], Callable[..., Any]]) -> None:
        self.build = build


_KERNELS: dict[str, dict[int, Any]] = {}
_SIGNATURES: dict[str, KernelSignature] = {}
#: (name, device code) -> the unbound ``fn(xp, *inputs, out, *attrs)`` behind a template
#: or builder registration (kept apart: :func:`get_kernel` replaces the lazy entry).
_TEMPLATES: dict[tuple[str, int], Callable[..., Any]] = {}


def device_type_code(device_type: str | int, where: str = "register_kernel") -> int:
    """The DLPack code (1 = cpu, 2 = cuda) for ``"cpu"``/``"cuda"``/``1``/``2``."""
    if isinstance(device_type, str) and device_type in DEVICE_NAME_TYPES:
        return DEVICE_NAME_TYPES[device_type]
    if isinstance(device_type, int) and not isinstance(device_type, bool):
        if int(device_type) in DEVICE_TYPE_NAMES:
            return int(device_type)
    raise DeviceError(f"{where}: device_type must be 'cpu', 'cuda', 1 or 2, got "
                      f"{device_type!r}")


def signature_of(fn: Callable[..., Any], skip_first: bool = False) -> KernelSignature:
    """Read the :class:`KernelSignature` of ``fn`` (ValueError if it breaks the convention)."""
    where = f"register_kernel: {getattr(fn, '__qualname__', fn)!r}"
    params = list(inspect.signature(fn).parameters.values())[1 if skip_first else 0:]
    for p in params:
        if p.kind not in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            raise ValueError(f"{where}: parameter {p.name!r} must be positional, got "
                             f"{p.kind.description}")
    names = [p.name for p in params]
    found = [n for n in names if n in OUTPUT_NAMES]
    if len(found) != 1:
        raise ValueError(f"{where}: expected exactly one output parameter named 'out' or "
                         f"'outs', got parameters {names}")
    split = names.index(found[0])
    for p in params[:split + 1]:
        if p.default is not p.empty:
            raise ValueError(f"{where}: tensor parameter {p.name!r} must not have a default")
    attrs = {p.name: REQUIRED if p.default is p.empty else p.default
             for p in params[split + 1:]}
    return KernelSignature(tuple(names[:split]), found[0], attrs)


def _add(name: str, code: int, impl: Any, sig: KernelSignature) -> None:
    if not isinstance(name, str) or not name:
        raise TypeError(f"register_kernel: name must be a non-empty str, got {name!r}")
    by_device = _KERNELS.setdefault(name, {})
    if code in by_device:
        raise ValueError(f"register_kernel: kernel {name!r} is already registered for device "
                         f"type {DEVICE_TYPE_NAMES[code]!r}")
    known = _SIGNATURES.get(name)
    if known is not None and known != sig:
        raise ValueError(f"register_kernel: kernel {name!r} for {DEVICE_TYPE_NAMES[code]!r} "
                         f"has signature {sig}, but other devices registered {known}")
    _SIGNATURES[name] = sig
    by_device[code] = impl


def register_kernel(name: str, device_type: str | int) -> Callable[[F], F]:
    """Decorator: register ``fn(*inputs, out, *attrs)`` as kernel ``name`` on a device type.

    A second registration of the same (name, device type) raises ValueError.
    """
    code = device_type_code(device_type)

    def register(fn: F) -> F:
        _add(name, code, fn, signature_of(fn))
        return fn

    return register


def register_template(name: str, device_types: tuple[str | int, ...] = ("cpu", "cuda")
                      ) -> Callable[[F], F]:
    """Decorator: register ``fn(xp, *inputs, out, *attrs)`` for each of ``device_types``.

    ``xp`` is bound to the device's array module (``numpy``, ``cupy``) on first lookup.
    """
    codes = [device_type_code(d, "register_template") for d in device_types]

    def register(fn: F) -> F:
        sig = signature_of(fn, skip_first=True)
        for code in codes:
            _add(name, code, _Lazy(functools.partial(_bind_template, fn)), sig)
            _TEMPLATES[(name, code)] = fn
        return fn

    return register


def register_builder(name: str, device_types: tuple[str | int, ...] = ("cpu", "cuda")
                     ) -> Callable[[F], F]:
    """Decorator: register ``build(xp) -> kernel`` for each of ``device_types``.

    For the hottest kernels: ``build`` looks up ufuncs once, so each call skips even the
    module attribute lookup. It runs once with NumPy at registration (to read the
    kernel's signature) and once per device type on first lookup.
    """
    codes = [device_type_code(d, "register_builder") for d in device_types]

    def register(build: F) -> F:
        import numpy
        sig = signature_of(build(numpy))
        for code in codes:
            _add(name, code, _Lazy(build), sig)
            _TEMPLATES[(name, code)] = _builder_template(build)
        return build

    return register


def _bind_template(fn: Callable[..., Any], xp: Any) -> Callable[..., Any]:
    bound = functools.partial(fn, xp)
    bound.__name__ = fn.__name__  # type: ignore[attr-defined]
    bound.__doc__ = fn.__doc__
    return bound


def _builder_template(build: Callable[..., Any]) -> Callable[..., Any]:
    """A builder in template form: ``fn(xp, *args)`` builds the kernel for ``xp``, calls it."""
    def template(xp: Any, *args: Any) -> Any:
        return build(xp)(*args)

    template.__name__ = template.__qualname__ = getattr(build, "__name__", "template")
    template.__doc__ = build.__doc__
    return template


def template_of(name: str, device_type: str | int = "cuda") -> Callable[..., Any] | None:
    """The unbound ``fn(xp, *inputs, out, *attrs)`` that kernel ``name`` on ``device_type``
    was registered from, or None when that device has a dedicated implementation
    (``@register_kernel``, as in ``cuda_fused.py``) or none at all.

    For ``@register_template`` it is the decorated function itself; for
    ``@register_builder`` a function of the same shape that builds the kernel for ``xp``
    and calls it. Tests use it to run a kernel's CUDA code path with a stand-in ``xp``.
    Raises KernelNotFoundError for an unknown name.
    """
    code = device_type_code(device_type, "template_of")
    if name not in _KERNELS:
        raise KernelNotFoundError(_unknown_message("template_of", name))
    return _TEMPLATES.get((name, code))


def get_kernel(name: str, device_type: str | int) -> Callable[..., Any]:
    """The implementation of kernel ``name`` for a device type.

    Raises KernelNotFoundError naming the device types that do have it, or close names.
    """
    code = device_type_code(device_type, "get_kernel")
    by_device = _KERNELS.get(name)
    impl = None if by_device is None else by_device.get(code)
    if impl is None:
        raise KernelNotFoundError(_missing_message(name, code))
    if impl.__class__ is _Lazy:
        from relaxvm.devices.backend import get_backend
        impl = impl.build(get_backend(code).xp)  # imports CuPy on first CUDA lookup
        by_device[code] = impl  # type: ignore[index]
    return impl  # type: ignore[no-any-return]


def _missing_message(name: str, code: int) -> str:
    device = DEVICE_TYPE_NAMES[code]
    by_device = _KERNELS.get(name)
    if by_device:
        have = ", ".join(sorted(DEVICE_TYPE_NAMES[c] for c in by_device))
        return (f"get_kernel: kernel {name!r} has no implementation for device type "
                f"{device!r}; it is registered for: {have}")
    return _unknown_message("get_kernel", name, f" for device type {device!r}")


def _unknown_message(where: str, name: str, detail: str = "") -> str:
    close = difflib.get_close_matches(name, list(_KERNELS), n=3)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return f"{where}: no kernel named {name!r}{detail}{hint}"


def has_kernel(name: str, device_type: str | int | None = None) -> bool:
    """Whether kernel ``name`` exists (on ``device_type``, or on any device type)."""
    by_device = _KERNELS.get(name)
    if not by_device:
        return False
    return device_type is None or device_type_code(device_type, "has_kernel") in by_device


def kernel_names() -> list[str]:
    """Every registered kernel name, sorted."""
    return sorted(_KERNELS)


def kernel_devices(name: str) -> list[str]:
    """The device type names (``"cpu"``, ``"cuda"``) that implement kernel ``name``."""
    by_device = _KERNELS.get(name)
    if not by_device:
        raise KernelNotFoundError(_unknown_message("kernel_devices", name))
    return [DEVICE_TYPE_NAMES[c] for c in sorted(by_device)]


def kernel_signature(name: str) -> KernelSignature:
    """The positional layout ``(*inputs, out|outs, *attrs)`` shared by every device."""
    sig = _SIGNATURES.get(name)
    if sig is None:
        raise KernelNotFoundError(_unknown_message("kernel_signature", name))
    return sig


def unregister_kernel(name: str, device_type: str | int | None = None) -> None:
    """Forget a registration (tests use it to clean up); a no-op when absent."""
    by_device = _KERNELS.get(name)
    if by_device is None:
        return
    codes = list(by_device) if device_type is None else [
        device_type_code(device_type, "unregister_kernel")]
    for code in codes:
        by_device.pop(code, None)
        _TEMPLATES.pop((name, code), None)
    if not by_device:
        del _KERNELS[name]
        _SIGNATURES.pop(name, None)
