"""Kernel routing: the VM runs each kernel call on the device of its tensor arguments."""

from __future__ import annotations

import numpy as np
import pytest

import relaxvm
from relaxvm.errors import KernelNotFoundError, VMError
from relaxvm.kernels.registry import register_kernel, unregister_kernel
from relaxvm.vm import ExecBuilder, VirtualMachine


def kernel_program(kernel: str, device_index: int = 0):
    """main(a, b): out = kernel(a, b) in a storage on VM device ``device_index``."""
    ib = ExecBuilder()
    with ib.function("main", num_inputs=2, param_names=["a", "b"]):
        ib.emit_call("vm.builtin.alloc_storage", args=[ib.vm_state(), (4096,),
                                                         ib.imm(device_index),
                                                         relaxvm.DataType("uint8")], dst=ib.r(2))
        ib.emit_call("vm.builtin.alloc_tensor", args=[ib.r(2), ib.imm(0), (4,),
                                                        relaxvm.DataType("float32")], dst=ib.r(3))
        ib.emit_call(kernel, args=[ib.r(0), ib.r(1), ib.r(3)])
        ib.emit_ret(ib.r(3))
    return ib.get()


def test_kernel_runs_on_the_device_of_its_arguments(dev):
    vm = VirtualMachine(kernel_program("add"), dev)
    a, b = np.arange(4, dtype="float32"), np.full(4, 2, "float32")
    out = vm["main"](relaxvm.tensor(a, dev), relaxvm.tensor(b, dev))
    assert out.device == dev
    np.testing.assert_array_equal(out.numpy(), a + b)


def test_mixed_devices_in_one_call_name_kernel_and_devices():
    vm = VirtualMachine(kernel_program("add"), [relaxvm.cpu(0), relaxvm.cpu(1)])
    a = relaxvm.tensor(np.ones(4, "float32"), relaxvm.cpu(0))
    b = relaxvm.tensor(np.ones(4, "float32"), relaxvm.cpu(1))
    with pytest.raises(VMError, match=r"kernel add: tensor arguments are on different devices "
                                      r"\(cpu:0, cpu:1\)"):
        vm["main"](a, b)
    # The VM is still usable with consistent arguments.
    out = vm["main"](a, relaxvm.tensor(np.ones(4, "float32"), relaxvm.cpu(0)))
    np.testing.assert_array_equal(out.numpy(), [2, 2, 2, 2])


def test_kernel_missing_for_the_device_names_kernel_and_devices():
    @register_kernel("test_cuda_only_add", "cuda")
    def cuda_only(a, b, out):  # pragma: no cover - never runs without a GPU
        out.array[...] = a.array + b.array

    try:
        vm = VirtualMachine(kernel_program("test_cuda_only_add"), relaxvm.cpu())
        with pytest.raises(KernelNotFoundError, match=r"test_cuda_only_add.*cpu.*cuda"):
            vm["main"](np.ones(4, "float32"), np.ones(4, "float32"))
    finally:
        unregister_kernel("test_cuda_only_add")


def test_router_caches_choice_per_call_site_and_serves_new_devices():
    vm = VirtualMachine(kernel_program("multiply"), relaxvm.cpu(1))
    x = relaxvm.tensor(np.arange(4, dtype="float32"), relaxvm.cpu(1))
    for _ in range(3):
        np.testing.assert_array_equal(vm["main"](x, x).numpy(), np.arange(4) ** 2)


def hetero_program():
    """matmul on VM device 0, copy to the host (device -1 = last), relu there."""
    ib = ExecBuilder()
    f32 = relaxvm.DataType("float32")
    with ib.function("main", num_inputs=2, param_names=["x", "w"]):
        ib.emit_call("vm.builtin.alloc_storage",
                     args=[ib.vm_state(), (64,), ib.imm(0), relaxvm.DataType("uint8")], dst=ib.r(2))
        ib.emit_call("vm.builtin.alloc_tensor", args=[ib.r(2), ib.imm(0), (4, 4), f32], dst=ib.r(3))
        ib.emit_call("matmul", args=[ib.r(0), ib.r(1), ib.r(3)])
        ib.emit_call("vm.builtin.to_device", args=[ib.r(3), ib.imm(1), ib.imm(1)], dst=ib.r(4))
        ib.emit_call("vm.builtin.alloc_storage",
                     args=[ib.vm_state(), (64,), ib.imm(-1), relaxvm.DataType("uint8")],
                     dst=ib.r(5))
        ib.emit_call("vm.builtin.alloc_tensor", args=[ib.r(5), ib.imm(0), (4, 4), f32], dst=ib.r(6))
        ib.emit_call("relu", args=[ib.r(4), ib.r(6)])
        ib.emit_ret(ib.r(6))
    return ib.get()


@pytest.mark.parametrize("first", [
    pytest.param("cpu:0", id="cpu0+cpu1"),
    pytest.param("cuda:0", id="cuda0+cpu1", marks=pytest.mark.cuda),
])
def test_heterogeneous_program_runs_partly_on_each_device(first, fresh_memory):
    first_dev = relaxvm.device(first)
    devices = [first_dev, relaxvm.cpu(1)]
    vm = VirtualMachine(hetero_program(), devices, memory_cfg={relaxvm.cpu(1): "naive"})
    rng = np.random.default_rng(0)
    x, w = (rng.standard_normal((4, 4)).astype("float32") for _ in range(2))
    report = vm.profile("main", relaxvm.tensor(x, first_dev), relaxvm.tensor(w, first_dev))
    out = vm["main"](relaxvm.tensor(x, first_dev), relaxvm.tensor(w, first_dev))
    assert out.device == relaxvm.cpu(1)
    np.testing.assert_allclose(out.numpy(), np.maximum(x @ w, 0), rtol=1e-5, atol=1e-6)
    rows = {r["Name"]: r["Device"] for r in report.calls}
    assert rows["matmul"] == first and rows["relu"] == "cpu:1"
    assert fresh_memory.get_allocator(first_dev, "pooled").stats()["num_allocs"] >= 1
    assert fresh_memory.get_allocator(relaxvm.cpu(1), "naive").stats()["num_allocs"] >= 2
