"""``vm.builtin.*``: the packed functions compiled programs call, with TVM's signatures.

Builtins that need the VM (allocation, closures) receive it as their first argument, as
TVM passes ``%vm``. Builtins marked ``bind_vm`` get the VM bound when it loads instead, so
bytecode written for TVM (which passes no VM to them) still works.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from relaxvm.devices.device import CPU, Device
from relaxvm.errors import ArgumentError, VMError
from relaxvm.memory.manager import global_memory_manager
from relaxvm.memory.storage import Storage
from relaxvm.objects import DataType, Shape, numpy_dtype
from relaxvm.tensor import Tensor, copy_array, tensor_in_storage
from relaxvm.vm.closure import VMClosure
from relaxvm.vm.registry import register_func

BIND_VM_ATTR = "relaxvm_bind_vm"


def builtin(name: str, bind_vm: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a builtin as ``vm.builtin.<name>``."""
    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        if bind_vm:
            setattr(fn, BIND_VM_ATTR, True)
        register_func(f"vm.builtin.{name}", fn, override=True)
        return fn
    return register


def describe(value: Any) -> str:
    """How a value reads in an error message: ``float32[3, 3]``, ``Shape([2])``, ``int``."""
    if isinstance(value, Tensor):
        return f"{value.dtype}{list(value.array.shape)}"
    if isinstance(value, np.ndarray):
        return f"numpy {value.dtype.name}{list(value.shape)}"
    if isinstance(value, Shape):
        return f"Shape({list(value)})"
    return type(value).__name__


def _fail(err_ctx: Any, expected: str, value: Any) -> ArgumentError:
    ctx = str(err_ctx) if err_ctx else "argument"
    if " expects " in ctx:
        return ArgumentError(f"{ctx}, got {describe(value)}")
    return ArgumentError(f"{ctx} expects {expected}, got {describe(value)}")


# -- memory ---------------------------------------------------------------------------
@builtin("alloc_storage")
def alloc_storage(vm: Any, shape: Shape, device_index: int, dtype_hint: Any,
                  mem_scope: str = "global") -> Storage:
    """prod(shape) * itemsize(dtype_hint) bytes from the VM allocator of a device (-1 = host)."""
    allocators = vm.allocators
    if not -1 <= device_index < len(allocators):
        raise VMError(f"alloc_storage: device_index must be in [-1, {len(allocators)}), "
                      f"got {device_index}")
    nbytes = numpy_dtype(dtype_hint).itemsize
    for d in shape:
        nbytes *= d
    return Storage(allocators[device_index].alloc(nbytes))


@builtin("alloc_tensor")
def alloc_tensor(storage: Storage, offset: int, shape: Shape, dtype: Any,
                 mem_scope: str = "global") -> Tensor:
    """A view of ``shape``/``dtype`` into ``storage`` at byte ``offset``."""
    return tensor_in_storage(storage, offset, shape, dtype)


@builtin("null_value")
def null_value() -> None:
    """None: writing it into a register drops the register's reference (frees memory)."""
    return None


@builtin("alloc_shape_heap")
def alloc_shape_heap(vm: Any, size: int) -> Tensor:
    """An int64 scratch tensor for symbolic dimensions, on the host device."""
    host = vm.devices[-1]
    if host.device_type != CPU:
        raise VMError(f"alloc_shape_heap: the last VM device must be a CPU, got {host}")
    return Tensor(np.zeros(size, dtype=np.int64), host)


@builtin("memory_manager.clear")
def memory_manager_clear() -> None:
    """Release every cached block of every allocator."""
    global_memory_manager().clear()


# -- checks and shapes ------------------------------------------------------------------
@builtin("check_tensor_info")
def check_tensor_info(arg: Any, ndim: int, *rest: Any) -> None:
    """(arg, ndim, [dtype], err_ctx): arg must be a tensor of ndim dims (-1: any) and dtype."""
    dtype = rest[0] if len(rest) == 2 else None
    err_ctx = rest[-1] if rest else ""
    want = f"{dtype or ''} tensor".strip() + ("" if ndim == -1 else f" of {ndim} dims")
    if not isinstance(arg, Tensor):
        raise _fail(err_ctx, "a " + want, arg)
    if ndim != -1 and arg.array.ndim != ndim:
        raise _fail(err_ctx, "a " + want, arg)
    if dtype is not None and arg.array.dtype != numpy_dtype(dtype):
        raise _fail(err_ctx, "a " + want, arg)


@builtin("check_shape_info")
def check_shape_info(arg: Any, ndim: int, err_ctx: str = "") -> None:
    if not isinstance(arg, Shape) or (ndim != -1 and len(arg) != ndim):
        raise _fail(err_ctx, f"a Shape of {ndim} dims", arg)


@builtin("check_tuple_info")
def check_tuple_info(arg: Any, size: int, err_ctx: str = "") -> None:
    if not isinstance(arg, tuple) or isinstance(arg, Shape) or (size != -1 and len(arg) != size):
        raise _fail(err_ctx, f"a tuple of {size} fields", arg)


@builtin("check_prim_value_info")
def check_prim_value_info(arg: Any, dtype: Any, err_ctx: str = "") -> None:
    if not isinstance(arg, (int, float, bool, np.generic)):
        raise _fail(err_ctx, f"a {dtype} scalar", arg)


@builtin("check_func_info")
def check_func_info(arg: Any, err_ctx: str = "") -> None:
    if not callable(arg):
        raise _fail(err_ctx, "a function or closure", arg)


_ASSERT_EQ_IMM, _STORE_TO_HEAP, _NO_OP, _ASSERT_EQ_LOAD = 0, 1, 2, 3


@builtin("match_shape")
def match_shape(value: Any, heap: Any, ndim: int, *codes_and_ctx: Any) -> None:
    """Check (code 0, 3) or record (code 1) each dimension of a tensor or Shape."""
    shape = value.array.shape if isinstance(value, Tensor) else value
    err_ctx = codes_and_ctx[-1] if len(codes_and_ctx) == 2 * ndim + 1 else ""
    heap_arr = heap.array if isinstance(heap, Tensor) else heap
    if len(shape) != ndim:
        raise _fail(err_ctx, f"{ndim} dims", value)
    for i in range(ndim):
        code, v = codes_and_ctx[2 * i], codes_and_ctx[2 * i + 1]
        dim = shape[i]
        if code == _ASSERT_EQ_IMM:
            if dim != v:
                raise _fail(err_ctx, f"dimension {i} to be {v}", value)
        elif code == _STORE_TO_HEAP:
            heap_arr[v] = dim
        elif code == _ASSERT_EQ_LOAD:
            if dim != int(heap_arr[v]):
                raise _fail(err_ctx, f"dimension {i} to be {int(heap_arr[v])}", value)
        elif code != _NO_OP:
            raise VMError(f"match_shape: unknown match code {code} for dimension {i}")


@builtin("match_prim_value")
def match_prim_value(value: int, heap: Any, code: int, v: int, err_ctx: str = "") -> None:
    heap_arr = heap.array if isinstance(heap, Tensor) else heap
    if code == _ASSERT_EQ_IMM and value != v:
        raise _fail(err_ctx, f"the value {v}", value)
    if code == _STORE_TO_HEAP:
        heap_arr[v] = value
    elif code == _ASSERT_EQ_LOAD and value != int(heap_arr[v]):
        raise _fail(err_ctx, f"the value {int(heap_arr[v])}", value)


@builtin("make_shape")
def make_shape(heap: Any, ndim: int, *codes: int) -> Shape:
    """A Shape from immediates (code 0) and heap slots (code 1)."""
    heap_arr = heap.array if isinstance(heap, Tensor) else heap
    dims = []
    for i in range(ndim):
        code, v = codes[2 * i], codes[2 * i + 1]
        dims.append(v if code == 0 else int(heap_arr[v]))
    return tuple.__new__(Shape, dims)


@builtin("make_prim_value")
def make_prim_value(heap: Any, code: int, v: int) -> int:
    heap_arr = heap.array if isinstance(heap, Tensor) else heap
    return v if code == 0 else int(heap_arr[v])


@builtin("shape_of")
def shape_of(x: Any) -> Shape:
    """The shape of a tensor as a Shape."""
    if x.__class__ is not Tensor:
        raise ArgumentError(f"shape_of: expects a Tensor, got {describe(x)}")
    shape = x._shape
    if shape is None:
        shape = x._shape = tuple.__new__(Shape, x.array.shape)
    return shape


@builtin("tensor_to_shape")
def tensor_to_shape(x: Tensor) -> Shape:
    if not isinstance(x, Tensor) or x.array.ndim != 1 or x.array.dtype.kind not in "iu":
        raise ArgumentError(f"tensor_to_shape: expects a 1-D integer tensor, got {describe(x)}")
    return Shape(int(v) for v in x.numpy())


@builtin("reshape")
def reshape(x: Tensor, shape: Shape) -> Tensor:
    """A view of ``x`` with a new shape (no copy); -1 infers one dimension."""
    if not isinstance(x, Tensor):
        raise ArgumentError(f"reshape: expects a Tensor, got {describe(x)}")
    try:
        array = x.array.reshape(shape)
    except ValueError as exc:
        raise ArgumentError(f"reshape: cannot view {describe(x)} as {list(shape)}: {exc}") from None
    return Tensor(array, x.device, x.storage)


# -- values -------------------------------------------------------------------------------
@builtin("copy")
def copy(x: Any) -> Any:
    """Identity: materialises an immediate or constant into a register."""
    return x


@builtin("make_tuple")
def make_tuple(*fields: Any) -> tuple:
    return fields


@builtin("tuple_getitem")
def tuple_getitem(tup: tuple, index: int) -> Any:
    return tup[index]


@builtin("read_if_cond")
def read_if_cond(cond: Any) -> bool:
    """The truth of a bool/int, or of the first element of an integer/bool tensor."""
    if isinstance(cond, Tensor):
        if cond.array.dtype.kind not in "biu":
            raise ArgumentError(
                f"read_if_cond: expects an int or bool tensor, got {describe(cond)}")
        host = cond.array if cond.device.device_type == CPU else cond.numpy()
        return bool(host.reshape(-1)[0])
    return bool(cond)


@builtin("to_device", bind_vm=True)
def to_device(vm: Any, x: Tensor, device_type: int, device_id: int,
              mem_scope: str = "global") -> Tensor:
    """A copy of ``x`` on (device_type, device_id), from the VM's allocator for that device."""
    if not isinstance(x, Tensor):
        raise ArgumentError(f"to_device: expects a Tensor, got {describe(x)}")
    target = Device(device_type, device_id)
    allocator = vm.allocator_for(target)
    nbytes = x.array.nbytes
    out = tensor_in_storage(Storage(allocator.alloc(nbytes)), 0, x.array.shape, x.array.dtype)
    copy_array(out.array, target, x.array, x.device)
    return out


@builtin("call_tir_dyn")
def call_tir_dyn(func: Callable[..., Any], *args: Any) -> Any:
    """Call ``func(*tensors, *shape)``: the last argument is a Shape of extra int arguments."""
    *tensors, shape = args
    return func(*tensors, *shape)


# -- closures ---------------------------------------------------------------------------------
@builtin("make_closure")
def make_closure(func: Any, *captured: Any) -> VMClosure:
    """A closure over a VM function, with ``captured`` bound as its last arguments."""
    if isinstance(func, VMClosure):
        return VMClosure(func.func_name, func.impl, func.captured + captured)
    name = getattr(func, "vm_name", None)
    if name is None:
        raise ArgumentError(f"make_closure: expects a VM function (f[name]), got {describe(func)}")
    return VMClosure(name, func, captured)


@builtin("invoke_closure")
def invoke_closure(vm: Any, closure: Any, *args: Any) -> Any:
    """Call a closure, a VM function or a Python callable with ``args``."""
    if not callable(closure):
        raise ArgumentError(f"invoke_closure: expects a closure or function, got "
                            f"{describe(closure)}")
    return closure(*args)


def dtype_constant(name: str) -> DataType:
    return DataType(name)
