"""A stand-in for CuPy built on NumPy, so the CUDA branches of kernel templates run on CI.

Kernels written with ``@register_template`` take the array module ``xp`` and branch on
``xp is np`` (or on ``xp.__name__``) where CuPy needs other code. :data:`FAKE_CUPY` is
NumPy under another identity, so those kernels take their CUDA path while computing on
the CPU. It is deliberately small: NumPy's namespace, plus what CuPy has and NumPy
lacks, minus what our CUDA branches must not rely on:

* it is named ``cupy`` (what :func:`relaxvm.kernels.quantize.check_device_dtypes` reads);
* its arrays are :class:`DeviceArray`, an ndarray subclass with CuPy's ``.get()`` (a host
  copy), and ``asnumpy`` copies to a plain ndarray; every array a module function returns
  is a DeviceArray too, as every CuPy function returns a cupy.ndarray;
* like CuPy, its functions (all but ``asarray``/``array``/``asnumpy``) and ufuncs on its
  arrays raise TypeError for a host ndarray operand (of rank >= 1), so a CUDA branch
  that mixes host NumPy arrays into device math fails here as it would on a GPU;
* ``einsum`` refuses ``out=`` (CuPy 14's einsum has none), ``take`` refuses ``mode=`` and
  always wraps out-of-range indices (CuPy does not check them), ``argsort`` and ``sort``
  accept only ``kind=None`` or ``"stable"`` (CuPy's sort is always stable);
* :func:`installed` puts a fake ``cupyx`` module (``scatter_add``/``scatter_max``/
  ``scatter_min`` as ``numpy.add.at``/``maximum.at``/``minimum.at``) into ``sys.modules``
  while a kernel runs, for the ``import cupyx`` inside the kernels' CUDA branches.

What it cannot show: CuPy raising for a routine or dtype it lacks (bfloat16 loops, NumPy
functions CuPy never implemented, arguments CuPy ignores or rejects beyond those above),
``np.asarray``/``np.array`` applied by mistake to a device array (NumPy accepts a
DeviceArray; CuPy refuses implicit host conversion), numerical differences of CUDA's
libraries, the dedicated CUDA kernels (``cuda_fused.py``, ``fused.py``), asynchrony and
device memory.

:data:`EMULATED_CUDA` is the value of the ``dev`` fixture's ``cuda-emulated`` case: the
kernel harness recognises it; any other use of it skips the test (see its class).
"""

from __future__ import annotations

import contextlib
import functools
import sys
import types
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

import relaxvm


def _host_operand(values: Any) -> np.ndarray | None:
    """The first host array (a plain ndarray of rank >= 1) among ``values``, or None."""
    for v in values:
        if isinstance(v, (tuple, list)):
            found = _host_operand(v)
            if found is not None:
                return found
        elif type(v) is np.ndarray and v.ndim:
            return v
    return None


def _mixing_error(what: str, host: np.ndarray) -> TypeError:
    return TypeError(f"cuda-emulated: {what} got a host numpy.ndarray {host.dtype}"
                     f"{list(host.shape)} next to device arrays; CuPy raises TypeError "
                     f"(Unsupported type <class 'numpy.ndarray'>): move it with xp.asarray")


class DeviceArray(np.ndarray):
    """An ndarray standing for a cupy.ndarray: ``.get()`` returns a host copy, and a ufunc
    (``+``, ``xp.add``...) mixing it with a host ndarray raises TypeError, as CuPy does."""

    def get(self) -> np.ndarray:
        """A plain NumPy copy (CuPy: device to host)."""
        return np.array(self.view(np.ndarray))

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        host = _host_operand(inputs + tuple(kwargs.get("out", ())))
        if host is not None:
            raise _mixing_error(f"{ufunc.__name__}.{method}", host)
        args = [i.view(np.ndarray) if isinstance(i, DeviceArray) else i for i in inputs]
        if "out" in kwargs:
            kwargs["out"] = tuple(o.view(np.ndarray) if isinstance(o, DeviceArray) else o
                                  for o in kwargs["out"])
        result = getattr(ufunc, method)(*args, **kwargs)
        if "out" in kwargs and result is not None:
            outs = kwargs["out"]
            return outs[0].view(DeviceArray) if len(outs) == 1 else tuple(
                o.view(DeviceArray) for o in outs)
        return on_device(result)


def on_device(value: Any) -> Any:
    """``value`` with every ndarray in it (tuples and lists recurse) viewed as DeviceArray."""
    if isinstance(value, np.ndarray):
        return value if isinstance(value, DeviceArray) else value.view(DeviceArray)
    if isinstance(value, tuple):
        return tuple(on_device(v) for v in value)
    if isinstance(value, list):
        return [on_device(v) for v in value]
    return value


def _host_view(value: Any) -> Any:
    """``value`` with every DeviceArray in it viewed as a plain ndarray (same memory), so
    NumPy's own helpers inside a fake function never meet the mixing check."""
    if isinstance(value, DeviceArray):
        return value.view(np.ndarray)
    if isinstance(value, (tuple, list)):
        return type(value)(_host_view(v) for v in value)
    return value


def _device_function(name: str, fn: Callable[..., Any], transfer: bool = False
                     ) -> Callable[..., Any]:
    """``fn`` returning DeviceArrays; unless it is a ``transfer`` (``asarray``), it
    refuses host arrays among its arguments."""
    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        host = None if transfer else _host_operand(args + tuple(kwargs.values()))
        if host is not None:
            raise _mixing_error(f"cupy.{name}", host)
        return on_device(fn(*_host_view(args), **{k: _host_view(v) for k, v in kwargs.items()}))

    return call


def _einsum(*operands: Any, out: Any = None, **kwargs: Any) -> Any:
    if out is not None:
        raise TypeError("einsum() got an unexpected keyword argument 'out' (CuPy's einsum "
                        "has no out=)")
    return np.einsum(*operands, **kwargs)


def _take(a: Any, indices: Any, axis: int | None = None, out: Any = None, **kwargs: Any) -> Any:
    if kwargs:
        raise TypeError(f"take() got unexpected keyword arguments {sorted(kwargs)} (CuPy's "
                        f"take has no mode=)")
    return np.take(a, indices, axis=axis, out=out, mode="wrap")


def _stable_only(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def call(a: Any, axis: int | None = -1, kind: str | None = None) -> Any:
        if kind not in (None, "stable"):
            raise ValueError(f"{fn.__name__}: CuPy accepts only kind=None or 'stable', got "
                             f"{kind!r}")
        return fn(a, axis=axis, kind="stable")

    return call


def _asnumpy(a: Any, stream: Any = None, order: Any = "C", out: Any = None) -> Any:
    """cupy.asnumpy: a host copy (into ``out`` when given)."""
    host = np.array(a.view(np.ndarray) if isinstance(a, np.ndarray) else a, order=order)
    if out is None:
        return host
    out[...] = host
    return out


#: Names whose CuPy behaviour differs from NumPy's in a way our CUDA branches depend on.
_OVERRIDES: dict[str, Callable[..., Any]] = {
    "einsum": _einsum,
    "take": _take,
    "argsort": _stable_only(np.argsort),
    "sort": _stable_only(np.sort),
    "asnumpy": _asnumpy,
}


#: Functions that take host arrays to the device (``asnumpy`` goes the other way).
_TRANSFERS = frozenset({"asarray", "array"})


class FakeCupy(types.ModuleType):
    """NumPy's namespace under the name ``cupy``, with :data:`_OVERRIDES` and DeviceArray
    results. Submodules (``fft``, ``linalg``, ``lib``) are NumPy's, results wrapped too."""

    def __init__(self, name: str = "cupy", base: Any = np) -> None:
        super().__init__(name)
        self._base = base

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if self._base is np and name in _OVERRIDES:
            value = _OVERRIDES[name]
        else:
            value = getattr(self._base, name)
        if isinstance(value, types.ModuleType):
            value = FakeCupy(f"{self.__name__}.{name}", value)
        elif name == "asnumpy":
            pass
        elif isinstance(value, (types.FunctionType, types.BuiltinFunctionType)) or (
                callable(value) and not isinstance(value, (type, np.ufunc))):
            value = _device_function(f"{self.__name__[5:]}{name}".lstrip("."), value,
                                     transfer=name in _TRANSFERS)
        setattr(self, name, value)  # cached: the next lookup is a plain attribute
        return value


FAKE_CUPY = FakeCupy()


def _scatter(ufunc: np.ufunc) -> Callable[[Any, Any, Any], None]:
    def scatter(a: Any, slices: Any, value: Any) -> None:
        ufunc.at(a, slices, value)

    scatter.__name__ = f"scatter_{ufunc.__name__}"
    scatter.__doc__ = f"cupyx.scatter_*: unbuffered ``numpy.{ufunc.__name__}.at``."
    return scatter


FAKE_CUPYX = types.ModuleType("cupyx", "Fake cupyx: the scatter functions kernels use.")
FAKE_CUPYX.scatter_add = _scatter(np.add)  # type: ignore[attr-defined]
FAKE_CUPYX.scatter_max = _scatter(np.maximum)  # type: ignore[attr-defined]
FAKE_CUPYX.scatter_min = _scatter(np.minimum)  # type: ignore[attr-defined]


@contextlib.contextmanager
def installed() -> Iterator[FakeCupy]:
    """The fake CuPy, with the fake ``cupyx`` importable until the block ends (a real
    cupyx, if any, is put back)."""
    saved = sys.modules.get("cupyx")
    sys.modules["cupyx"] = FAKE_CUPYX
    try:
        yield FAKE_CUPY
    finally:
        if saved is None:
            sys.modules.pop("cupyx", None)
        else:
            sys.modules["cupyx"] = saved


EMULATED_NAME = "cuda-emulated"


class EmulatedCuda:
    """The ``dev`` of the ``cuda-emulated`` test case. It is no :class:`relaxvm.Device`:
    :func:`kernel_harness.run_kernel` and friends recognise it and run the kernel's
    template with :data:`FAKE_CUPY`; a test that reads it as a device (``dev.device_type``,
    ``get_kernel(name, dev...)``) is skipped, and ``relaxvm.tensor(x, dev)`` raises a
    DeviceError naming it, which ``tests/conftest.py`` turns into the same skip."""

    SKIP_REASON = ("cuda-emulated runs kernels only through kernel_harness.run_kernel/"
                   "run_multi; this test uses the device directly")

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or not hasattr(relaxvm.Device, name):
            raise AttributeError(name)  # not a Device attribute (hypothesis probes some)
        pytest.skip(f"{self.SKIP_REASON} (dev.{name})")

    def __repr__(self) -> str:
        return EMULATED_NAME

    __str__ = __repr__


EMULATED_CUDA = EmulatedCuda()
