"""Small bytecode programs and packed functions shared by the VM tests."""

from __future__ import annotations

import numpy as np

import relaxvm
from relaxvm.vm.builder import ExecBuilder
from relaxvm.vm.registry import register_func


def _np_binary(op):
    def fn(a, b):
        return relaxvm.tensor(op(a.numpy(), b.numpy()), a.device)
    return fn


# Packed functions in the style of TVM's test.vm.* helpers: allocate and return.
register_func("test.vm.add", _np_binary(np.add), override=True)
register_func("test.vm.mul", _np_binary(np.multiply), override=True)
register_func("test.vm.add_scalar", lambda a, b: a + b, override=True)
register_func("test.vm.mul_scalar", lambda a, b: a * b, override=True)
register_func("test.vm.less", lambda a, b: int(a < b), override=True)
register_func("test.vm.fail", lambda *args: (_ for _ in ()).throw(
    KeyError("deliberate failure")), override=True)


def emit_alloc(ib: ExecBuilder, storage: int, tensor: int, shape: tuple, offset: int = 0,
               nbytes: int = 4096, dtype: str = "float32") -> None:
    """Emit ``alloc_storage`` (``nbytes`` on VM device 0) into register ``storage`` and
    ``alloc_tensor`` of ``shape`` at ``offset`` into register ``tensor``."""
    ib.emit_call("vm.builtin.alloc_storage", args=[ib.vm_state(), (nbytes,), ib.imm(0),
                                                     relaxvm.DataType("uint8")], dst=ib.r(storage))
    ib.emit_call("vm.builtin.alloc_tensor", args=[ib.r(storage), ib.imm(offset), shape,
                                                    relaxvm.DataType(dtype)], dst=ib.r(tensor))


def add_program() -> relaxvm.vm.Executable:
    """main(a, b) = test.vm.add(a, b)."""
    ib = ExecBuilder()
    with ib.function("main", num_inputs=2, param_names=["a", "b"]):
        ib.emit_call("test.vm.add", args=[ib.r(0), ib.r(1)], dst=ib.r(2))
        ib.emit_ret(ib.r(2))
    return ib.get()


def while_loop_program() -> relaxvm.vm.Executable:
    """sum_to(n): i = 0; s = 0; while i < n: s += i; i += 1; return s."""
    ib = ExecBuilder()
    with ib.function("sum_to", num_inputs=1, param_names=["n"]):
        ib.emit_call("vm.builtin.copy", args=[ib.imm(0)], dst=ib.r(1))          # 0: i = 0
        ib.emit_call("vm.builtin.copy", args=[ib.imm(0)], dst=ib.r(2))          # 1: s = 0
        ib.emit_call("test.vm.less", args=[ib.r(1), ib.r(0)], dst=ib.r(3))      # 2: c = i < n
        ib.emit_if(ib.r(3), 4)                                                  # 3: if !c -> 7
        ib.emit_call("test.vm.add_scalar", args=[ib.r(2), ib.r(1)], dst=ib.r(2))  # 4
        ib.emit_call("test.vm.add_scalar", args=[ib.r(1), ib.imm(1)], dst=ib.r(1))  # 5
        ib.emit_goto(-4)                                                        # 6: -> 2
        ib.emit_ret(ib.r(2))                                                    # 7
    return ib.get()


def factorial_program() -> relaxvm.vm.Executable:
    """fact(n) = 1 if n < 2 else n * fact(n - 1), by recursion."""
    ib = ExecBuilder()
    ib.declare_function("fact", relaxvm.vm.FuncKind.VM_FUNC)
    with ib.function("fact", num_inputs=1, param_names=["n"]):
        ib.emit_call("test.vm.less", args=[ib.r(0), ib.imm(2)], dst=ib.r(1))     # 0
        ib.emit_if(ib.r(1), 3)                                                   # 1: small -> 2
        ib.emit_call("vm.builtin.copy", args=[ib.imm(1)], dst=ib.r(2))           # 2: r = 1
        ib.emit_goto(4)                                                          # 3: -> 7
        ib.emit_call("test.vm.add_scalar", args=[ib.r(0), ib.imm(-1)], dst=ib.r(3))  # 4
        ib.emit_call("fact", args=[ib.r(3)], dst=ib.r(4))                         # 5
        ib.emit_call("test.vm.mul_scalar", args=[ib.r(0), ib.r(4)], dst=ib.r(2))  # 6
        ib.emit_ret(ib.r(2))                                                     # 7
    return ib.get()
