"""Tensor: an n-dimensional array on a device, usually a view into a pooled Storage.

A Tensor wraps the backend's native array (``numpy.ndarray`` on CPU, ``cupy.ndarray``
on CUDA) as ``.array`` — kernels read and write that directly — and keeps its Storage
alive, so memory returns to the pool only when the last view is gone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from relaxvm.devices.device import CPU, CUDA, Device, cpu
from relaxvm.devices.device import device as parse_device
from relaxvm.errors import DeviceError
from relaxvm.memory.allocator import Allocator
from relaxvm.memory.manager import global_memory_manager
from relaxvm.memory.storage import Storage
from relaxvm.objects import Shape, numpy_dtype


class Tensor:
    """An array on a device. Make one with :func:`tensor`, :func:`empty` or
    :func:`from_dlpack`; read it back with :meth:`numpy`."""

    __slots__ = ("array", "device", "storage", "_shape", "__weakref__")

    def __init__(self, array: Any, device: Device, storage: Storage | None = None) -> None:
        self.array = array
        self.device = device
        self.storage = storage
        self._shape: Shape | None = None

    # -- description ------------------------------------------------------------------
    @property
    def shape(self) -> Shape:
        """The tensor's shape."""
        shape = self._shape
        if shape is None:
            shape = self._shape = tuple.__new__(Shape, self.array.shape)
        return shape

    @property
    def dtype(self) -> str:
        """The element type."""
        return self.array.dtype.name

    @property
    def ndim(self) -> int:
        """The number of dimensions."""
        return self.array.ndim

    @property
    def size(self) -> int:
        """The number of elements."""
        return int(self.array.size)

    @property
    def nbytes(self) -> int:
        """The bytes the elements take."""
        return int(self.array.nbytes)

    @property
    def byte_offset(self) -> int:
        """Offset of the first element inside the Storage (0 for foreign arrays)."""
        if self.storage is None:
            return 0
        base = self.storage.buffer.handle
        if self.device.device_type == CPU:
            return int(self.array.ctypes.data - base.ctypes.data)
        return int(self.array.data.ptr - base.ptr)

    def __bool__(self) -> bool:
        raise TypeError(f"the truth value of a Tensor ({self.dtype}{list(self.array.shape)}) is "
                        f"ambiguous; read it with vm.builtin.read_if_cond or .numpy()")

    def __repr__(self) -> str:
        return f"<Tensor {self.dtype}{list(self.array.shape)} on {self.device}>"

    def __str__(self) -> str:
        return f"{self!r}\n{self.numpy()}"

    # -- data movement ----------------------------------------------------------------
    def numpy(self) -> np.ndarray:
        """A host NumPy copy of the data (use ``np.from_dlpack`` for a zero-copy view)."""
        return self.device.backend.to_numpy(self.array)

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        out = self.numpy()
        return out if dtype is None else out.astype(dtype, copy=False)

    def copyto(self, target: Device | str | Tensor) -> Tensor:
        """Copy into ``target``: a Tensor of the same shape/dtype, or a new Tensor on a device."""
        if isinstance(target, Tensor):
            target.copyfrom(self)
            return target
        dev = parse_device(target)
        out = empty(self.array.shape, self.array.dtype, dev)
        copy_array(out.array, dev, self.array, self.device)
        return out

    def copyfrom(self, source: Any) -> Tensor:
        """Overwrite this tensor's data with ``source``.

        ``source`` may be a Tensor or a DLPack producer (CuPy, torch, ... on any device),
        which must match this tensor's shape and dtype, or a NumPy array, list or scalar,
        which is cast to this tensor's dtype.
        """
        if _is_foreign_dlpack(source):
            source = from_dlpack(source)
        if isinstance(source, Tensor):
            _check_same_layout("Tensor.copyfrom", self, source.array.shape, source.array.dtype)
            copy_array(self.array, self.device, source.array, source.device)
            return self
        host = np.asarray(source)
        if host.dtype != self.array.dtype:
            if host.shape != self.array.shape:
                _check_same_layout("Tensor.copyfrom", self, host.shape, host.dtype)
            host = host.astype(self.array.dtype)
        _check_same_layout("Tensor.copyfrom", self, host.shape, host.dtype)
        self.device.backend.copy_from_host(self.array, host)
        return self

    # -- DLPack -------------------------------------------------------------------------
    def __dlpack__(self, *args: Any, **kwargs: Any) -> Any:
        return self.array.__dlpack__(*args, **kwargs)

    def __dlpack_device__(self) -> tuple[int, int]:
        return (self.device.device_type, self.device.index)


def _check_same_layout(where: str, dst: Tensor, shape: Sequence[int], dtype: Any) -> None:
    if tuple(shape) != tuple(dst.array.shape) or np.dtype(dtype) != dst.array.dtype:
        raise ValueError(f"{where}: source must be {dst.dtype}{list(dst.array.shape)}, got "
                         f"{np.dtype(dtype).name}{list(shape)}")


def copy_array(dst: Any, dst_device: Device, src: Any, src_device: Device) -> None:
    """Copy between native arrays of any two devices (same shape and dtype)."""
    if dst_device.device_type == src_device.device_type:
        dst_device.backend.copy_within(dst, src)
    elif src_device.device_type == CPU:
        dst_device.backend.copy_from_host(dst, src)
    elif dst_device.device_type == CPU:
        np.copyto(dst, src_device.backend.to_numpy(src))
    else:
        dst_device.backend.copy_from_host(dst, src_device.backend.to_numpy(src))


def tensor_in_storage(storage: Storage, offset: int, shape: Sequence[int], dtype: Any) -> Tensor:
    """A view of ``shape``/``dtype`` into ``storage`` at byte ``offset`` (bounds-checked)."""
    np_dtype = numpy_dtype(dtype)
    nbytes = np_dtype.itemsize
    for d in shape:
        nbytes *= d
    buffer = storage.buffer
    if offset < 0 or offset + nbytes > buffer.nbytes:
        raise ValueError(f"alloc_tensor: a {np_dtype.name}{list(shape)} tensor needs {nbytes} "
                         f"bytes at offset {offset}, but the storage holds {buffer.nbytes} bytes")
    return Tensor(cached_view(buffer, offset, tuple(shape), np_dtype), buffer.device, storage)


MAX_CACHED_VIEWS = 64


def cached_view(buffer: Any, offset: int, shape: tuple[int, ...], np_dtype: np.dtype,
                key: Any = None) -> Any:
    """The array of ``shape``/``np_dtype`` at ``offset`` in ``buffer``, made once per buffer.

    Making a typed view costs ~0.5 us with NumPy and several with CuPy; pooled blocks are
    reused run after run with the same views, so they are kept on the Buffer. The pool
    accounts for them when it checks whether a freed block is still viewed from outside.
    """
    if key is None:
        key = (offset, shape, np_dtype)
    views = buffer.views
    if views is None:
        views = buffer.views = {}
    array = views.get(key)
    if array is None:
        array = buffer.device.backend.view(buffer.handle, offset, shape, np_dtype)
        if len(views) < MAX_CACHED_VIEWS:
            views[key] = array
    return array


def empty(shape: Sequence[int], dtype: Any = "float32", device: Device | str | None = None,
          allocator: Allocator | None = None) -> Tensor:
    """An uninitialized tensor, from ``allocator`` or the device's pooled allocator."""
    dev = cpu(0) if device is None else parse_device(device)
    np_dtype = numpy_dtype(dtype)
    try:
        shape = tuple(int(d) for d in shape)
    except TypeError:
        raise TypeError(f"empty: shape must be a sequence of ints, got {shape!r}") from None
    if any(d < 0 for d in shape):
        raise ValueError(f"empty: shape must not have negative dimensions, got {list(shape)}")
    nbytes = np_dtype.itemsize * int(np.prod(shape, dtype=np.int64))
    alloc = allocator if allocator is not None else global_memory_manager().get_allocator(dev)
    storage = Storage(alloc.alloc(nbytes))
    return tensor_in_storage(storage, 0, shape, np_dtype)


def tensor(data: Any, device: Device | str | None = None, dtype: Any = None) -> Tensor:
    """A new tensor on ``device`` (default ``cpu(0)``) holding a copy of ``data``.

    ``data`` may be a Tensor, a NumPy array, any DLPack producer (CuPy, torch, ... on any
    device: read in place through DLPack, then copied), a nested list or a scalar. With
    ``dtype`` the copy is cast, on the device the data lives on.
    """
    dev = cpu(0) if device is None else parse_device(device)
    np_dtype = None if dtype is None else numpy_dtype(dtype)
    if _is_foreign_dlpack(data):
        data = from_dlpack(data)
    if isinstance(data, Tensor):
        return _copy_of(data, dev, np_dtype)
    host = np.asarray(data, dtype=np_dtype)
    if host.dtype == object:
        raise TypeError(f"tensor: data must be numeric, got an object array from {type(data)}")
    out = empty(host.shape, host.dtype, dev)
    dev.backend.copy_from_host(out.array, host)
    return out


def _copy_of(src: Tensor, dev: Device, np_dtype: np.dtype | None) -> Tensor:
    """A copy of ``src`` on ``dev``, cast to ``np_dtype`` (on src's device) when given."""
    array = src.array
    if np_dtype is not None and np_dtype != array.dtype:
        with src.device.backend.activate(src.device.index):
            array = array.astype(np_dtype)
    out = empty(array.shape, array.dtype, dev)
    copy_array(out.array, dev, array, src.device)
    return out


def _is_foreign_dlpack(obj: Any) -> bool:
    """True for a DLPack producer that is neither a Tensor nor a NumPy array."""
    return not isinstance(obj, (Tensor, np.ndarray)) and hasattr(obj, "__dlpack_device__")


def from_dlpack(obj: Any) -> Tensor:
    """A zero-copy Tensor over any DLPack producer (NumPy, CuPy, torch, ...)."""
    if isinstance(obj, Tensor):
        return obj
    if not hasattr(obj, "__dlpack_device__"):
        raise TypeError(f"from_dlpack: expected an object with __dlpack__ and "
                        f"__dlpack_device__, got {type(obj).__name__}")
    dev_type, index = obj.__dlpack_device__()
    dev_type, index = int(dev_type), int(index)
    if dev_type not in (CPU, CUDA):
        raise DeviceError(f"from_dlpack: device type {dev_type} is not supported; relaxvm "
                          f"handles CPU (1) and CUDA (2)")
    # Every CPU producer shares the host's memory, so it is cpu(0) whatever it reports.
    dev = Device(dev_type, index if dev_type == CUDA else 0)
    return Tensor(dev.backend.from_dlpack(dev.index, obj), dev)


def asarray(value: Any) -> Any:
    """The native array behind a Tensor, or ``value`` itself."""
    return value.array if isinstance(value, Tensor) else value
