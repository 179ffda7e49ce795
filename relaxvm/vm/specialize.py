"""Call sites specialised to their constant arguments, built once when a VM loads.

Compiled programs allocate with constant shapes and dtypes: ``alloc_storage(vm, c[0], i0,
c[1])`` and ``alloc_tensor(%s, i4096, c[2], c[3])``, and check their parameters against
constant types: ``check_tensor_info(%0, i2, c[4], c[5])``, ``match_shape(%0, %void, i2, i0,
i32, i0, i32, c[5])``. Working out byte counts and NumPy dtypes from those constants on every
call costs more than the work itself, so such sites get a closure with the answers
precomputed; a check that does not pass on the fast path calls the generic builtin, which
raises its usual error. The closures take the same arguments as
the builtin, so the generated code does not change shape.

Check closures also carry what their passing path tests as a :class:`Guard` (attribute
``GUARD_ATTR``): the plain translation tests those facts inline, one condition for a whole
run of checks, and calls the closures only when the condition fails (``translate.py``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from relaxvm.memory.pooled import PooledAllocator
from relaxvm.memory.storage import Storage
from relaxvm.objects import Shape, numpy_dtype
from relaxvm.tensor import Tensor, cached_view, tensor_in_storage
from relaxvm.vm.bytecode import ArgKind, decode_arg

_MISSING = object()

# The allocation sites build their Tensor or Storage as ``_new(cls)`` plus a store to every
# slot, skipping the class's Python ``__init__`` (a frame, ~30 ns a call); the tests check
# that the slots set here are still all the class has.
_new = object.__new__

GUARD_ATTR = "vm_guard"


@dataclass(frozen=True)
class Guard:
    """What a check site's passing path tests of its first argument, beyond its being a
    Tensor: ``ndim`` dimensions, and when set, the NumPy ``dtype`` and the exact ``dims``."""
    ndim: int
    dtype: Any = None
    dims: tuple[int, ...] | None = None


def _constant(word: int, vm: Any) -> Any:
    """The value of an immediate or constant-pool argument, else _MISSING."""
    kind, value = decode_arg(word)
    if kind == ArgKind.IMMEDIATE:
        return value
    if kind == ArgKind.CONST_IDX and 0 <= value < len(vm.constants):
        return vm.constants[value]
    return _MISSING


def specialize(name: str, words: tuple, vm: Any) -> Callable[..., Any] | None:
    """A specialised callable for this call site, or None to use the generic builtin."""
    maker = _MAKERS.get(name)
    return None if maker is None else maker(words, vm)


def _alloc_storage(words: tuple, vm: Any) -> Callable[..., Any] | None:
    if len(words) < 4:
        return None
    shape, index, dtype = (_constant(w, vm) for w in words[1:4])
    if not isinstance(shape, Shape) or not isinstance(index, int) or dtype is _MISSING:
        return None
    if not -1 <= index < len(vm.allocators):
        return None  # the generic builtin raises the error at run time
    try:
        nbytes = numpy_dtype(dtype).itemsize * Shape(shape).numel
    except TypeError:
        return None
    allocator = vm.allocators[index]
    take = (allocator.sized(nbytes) if isinstance(allocator, PooledAllocator) else
            functools.partial(allocator.alloc, nbytes))

    def alloc_storage_site(vm_: Any, shape_: Any, index_: Any, dtype_: Any,
                           scope: str = "global") -> Storage:
        buffer = take()  # first: a Storage without a buffer must never exist
        storage = _new(Storage)  # Storage(buffer)
        storage.buffer = buffer
        return storage

    return alloc_storage_site


def _alloc_tensor(words: tuple, vm: Any) -> Callable[..., Any] | None:
    if len(words) < 4:
        return None
    offset, shape, dtype = (_constant(w, vm) for w in words[1:4])
    if not isinstance(offset, int) or not isinstance(shape, Shape) or dtype is _MISSING:
        return None
    try:
        np_dtype = numpy_dtype(dtype)
    except TypeError:
        return None
    dims = tuple(shape)
    key = (offset, dims, np_dtype)
    known_shape = tuple.__new__(Shape, dims)  # what Tensor.shape would make, made once

    def alloc_tensor_site(storage: Storage, offset_: Any, shape_: Any, dtype_: Any,
                          scope: str = "global") -> Tensor:
        buffer = storage.buffer
        views = buffer.views
        if views is not None:
            array = views.get(key)
            if array is not None:
                tensor = _new(Tensor)  # Tensor(array, buffer.device, storage)
                tensor.array = array
                tensor.device = buffer.device
                tensor.storage = storage
                tensor._shape = known_shape
                return tensor
            return Tensor(cached_view(buffer, offset, dims, np_dtype, key) if
                          _fits(buffer, offset, dims, np_dtype) else
                          tensor_in_storage(storage, offset, dims, np_dtype).array,
                          buffer.device, storage)
        return tensor_in_storage(storage, offset, dims, np_dtype)

    return alloc_tensor_site


def _fits(buffer: Any, offset: int, dims: tuple, np_dtype: Any) -> bool:
    nbytes = np_dtype.itemsize
    for d in dims:
        nbytes *= d
    return 0 <= offset and offset + nbytes <= buffer.nbytes


def _check_tensor_info(words: tuple, vm: Any) -> Callable[..., Any] | None:
    """Parameter checks with constant ndim and dtype: one attribute compare each on the
    passing path; anything else goes to the generic builtin, which raises the error."""
    from relaxvm.vm.builtins import check_tensor_info
    if len(words) != 4:
        return None
    ndim, dtype = _constant(words[1], vm), _constant(words[2], vm)
    if not isinstance(ndim, int) or ndim < 0 or dtype is _MISSING or dtype is None:
        return None
    try:
        np_dtype = numpy_dtype(dtype)
    except TypeError:
        return None

    def check_tensor_info_site(arg: Any, *rest: Any) -> None:
        if arg.__class__ is Tensor:
            array = arg.array
            if array.ndim == ndim and array.dtype == np_dtype:
                return
        check_tensor_info(arg, *rest)

    setattr(check_tensor_info_site, GUARD_ATTR, Guard(ndim, dtype=np_dtype))
    return check_tensor_info_site


def _match_shape(words: tuple, vm: Any) -> Callable[..., Any] | None:
    """A shape match whose every dimension is asserted equal to an immediate (code 0): one
    tuple compare on the passing path."""
    from relaxvm.vm.builtins import match_shape
    if len(words) < 3:
        return None
    ndim = _constant(words[2], vm)
    if not isinstance(ndim, int) or ndim < 0 or len(words) not in (3 + 2 * ndim, 4 + 2 * ndim):
        return None
    pairs = [_constant(w, vm) for w in words[3:3 + 2 * ndim]]
    if not all(isinstance(v, int) for v in pairs) or any(pairs[0::2]):
        return None
    dims = tuple(pairs[1::2])

    def match_shape_site(value: Any, *rest: Any) -> None:
        if value.__class__ is Tensor and value.array.shape == dims:
            return
        match_shape(value, *rest)

    setattr(match_shape_site, GUARD_ATTR, Guard(ndim, dims=dims))
    return match_shape_site


_MAKERS: dict[str, Callable[[tuple, Any], Callable[..., Any] | None]] = {
    "vm.builtin.alloc_storage": _alloc_storage,
    "vm.builtin.alloc_tensor": _alloc_tensor,
    "vm.builtin.check_tensor_info": _check_tensor_info,
    "vm.builtin.match_shape": _match_shape,
}
