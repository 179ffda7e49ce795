"""Kernel routing: the VM runs each kernel call on the device of its tensor arguments."""

from __future__ import annotations

import numpy as np
import pytest
from programs import emit_alloc

import relaxvm
from relaxvm.errors import ArgumentError, KernelNotFoundError, VMError
from relaxvm.kernels.registry import get_kernel, has_kernel, register_kernel, unregister_kernel
from relaxvm.tensor import Tensor
from relaxvm.vm import ExecBuilder, VirtualMachine
from relaxvm.vm.resolve import KERNEL_ATTR


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


def concat_program():
    """main(a, b): out = concat((a, b)) into a storage on VM device 0."""
    ib = ExecBuilder()
    with ib.function("main", num_inputs=2, param_names=["a", "b"]):
        ib.emit_call("vm.builtin.make_tuple", args=[ib.r(0), ib.r(1)], dst=ib.r(2))
        emit_alloc(ib, 3, 4, (8,))
        ib.emit_call("concat", args=[ib.r(2), ib.r(4), ib.imm(0)])
        ib.emit_ret(ib.r(4))
    return ib.get()


def test_mixed_devices_inside_a_tuple_argument_name_kernel_and_devices():
    vm = VirtualMachine(concat_program(), [relaxvm.cpu(0), relaxvm.cpu(1)])
    a = relaxvm.tensor(np.ones(4, "float32"), relaxvm.cpu(0))
    b = relaxvm.tensor(np.ones(4, "float32"), relaxvm.cpu(1))
    with pytest.raises(VMError, match=r"kernel concat: tensor arguments are on different "
                                      r"devices \(cpu:0, cpu:1\)"):
        vm["main"](a, b)
    same = relaxvm.tensor(np.zeros(4, "float32"), relaxvm.cpu(0))
    np.testing.assert_array_equal(vm["main"](a, same).numpy(), [1, 1, 1, 1, 0, 0, 0, 0])


# -- kernels bound without routers --------------------------------------------------------
def kernel_sites(vm, name="main"):
    """The per-site callables of the kernel calls in VM function ``name`` (plain mode)."""
    index = vm.exe.func_map[name]
    translation = vm._translations["plain"]
    return [made for site, made in zip(translation.sites, translation.site_callables)
            if site.func_index == index and has_kernel(site.callee_name)]


def is_router(fn):
    return getattr(fn, KERNEL_ATTR, None) is not None


def test_one_device_vm_binds_kernel_implementations_directly():
    vm = VirtualMachine(kernel_program("add"), relaxvm.cpu())
    assert kernel_sites(vm) == [get_kernel("add", "cpu")]
    a, b = np.arange(4, dtype="float32"), np.full(4, 2, "float32")
    np.testing.assert_array_equal(vm["main"](a, b).numpy(), a + b)


def with_extra_call(name, *args):
    """Like kernel_program("add"), but ``a`` first goes through ``name``(a, *args)."""
    ib = ExecBuilder()
    with ib.function("main", num_inputs=2, param_names=["a", "b"]):
        ib.emit_call(name, args=[ib.r(0), *[ib.imm(v) for v in args]], dst=ib.r(4))
        emit_alloc(ib, 2, 3, (4,))
        ib.emit_call("add", args=[ib.r(4), ib.r(1), ib.r(3)])
        ib.emit_ret(ib.r(3))
    return ib.get()


relaxvm.vm.register_func("test.routing.identity", lambda x: x, override=True)


@pytest.mark.parametrize("make_exe, devices", [
    pytest.param(lambda: kernel_program("add"), [relaxvm.cpu(0), relaxvm.cpu(1)],
                 id="two-cpu-devices"),
    pytest.param(lambda: with_extra_call("vm.builtin.to_device", 1, 0), [relaxvm.cpu(0)],
                 id="to_device"),
    pytest.param(lambda: with_extra_call("test.routing.identity"), [relaxvm.cpu(0)],
                 id="register_func-callee"),
])
def test_kernels_keep_their_routers_when_a_tensor_may_come_from_elsewhere(make_exe, devices):
    vm = VirtualMachine(make_exe(), devices)
    sites = kernel_sites(vm)
    assert sites and all(is_router(s) for s in sites)
    x = relaxvm.tensor(np.arange(4, dtype="float32"))
    np.testing.assert_array_equal(vm["main"](x, x).numpy(), [0, 2, 4, 6])


def linked_program():
    """main calls helper (a kernel); helper2 calls a register_func function and is called by
    outer; lone calls a kernel and nothing else."""
    ib = ExecBuilder()
    f32, u8 = relaxvm.DataType("float32"), relaxvm.DataType("uint8")
    for name in ("helper", "lone"):
        with ib.function(name, num_inputs=2, param_names=["a", "b"]):
            ib.emit_call("vm.builtin.alloc_storage", args=[ib.vm_state(), (4096,), ib.imm(0), u8],
                         dst=ib.r(2))
            ib.emit_call("vm.builtin.alloc_tensor", args=[ib.r(2), ib.imm(0), (4,), f32],
                         dst=ib.r(3))
            ib.emit_call("add", args=[ib.r(0), ib.r(1), ib.r(3)])
            ib.emit_ret(ib.r(3))
    with ib.function("main", num_inputs=2, param_names=["a", "b"]):
        ib.emit_call("helper", args=[ib.r(0), ib.r(1)], dst=ib.r(2))
        ib.emit_ret(ib.r(2))
    with ib.function("outer", num_inputs=2, param_names=["a", "b"]):
        ib.emit_call("test.routing.identity", args=[ib.r(0)], dst=ib.r(2))
        ib.emit_call("helper", args=[ib.r(2), ib.r(1)], dst=ib.r(3))
        ib.emit_ret(ib.r(3))
    return ib.get()


def test_routers_stay_in_functions_linked_to_one_that_may_see_foreign_tensors():
    vm = VirtualMachine(linked_program(), relaxvm.cpu())
    # outer hands helper whatever test.routing.identity returns: helper keeps its router.
    assert [is_router(s) for s in kernel_sites(vm, "helper")] == [True]
    assert [is_router(s) for s in kernel_sites(vm, "lone")] == [False]
    x = relaxvm.tensor(np.ones(4, "float32"))
    for name in ("main", "outer", "lone"):
        np.testing.assert_array_equal(vm[name](x, x).numpy(), [2, 2, 2, 2])


def test_a_vm_function_passed_as_a_value_keeps_every_router():
    ib = ExecBuilder()
    with ib.function("add2", num_inputs=3, param_names=["a", "b", "out"]):
        ib.emit_call("add", args=[ib.r(0), ib.r(1), ib.r(2)])
        ib.emit_ret(ib.r(2))
    with ib.function("main", num_inputs=0, param_names=[]):
        ib.emit_call("vm.builtin.make_closure", args=[ib.f("add2")], dst=ib.r(0))
        ib.emit_ret(ib.r(0))
    vm = VirtualMachine(ib.get(), relaxvm.cpu())
    assert vm._direct_functions == frozenset()
    closure = vm["main"]()
    x = relaxvm.tensor(np.ones(4, "float32"))
    out = relaxvm.tensor(np.zeros(4, "float32"))
    np.testing.assert_array_equal(vm.invoke_closure(closure, x, x, out).numpy(), [2, 2, 2, 2])


def foreign(values):
    """A tensor that says it lives on cuda:0 (host memory: enough to be refused)."""
    return Tensor(np.asarray(values, dtype="float32"), relaxvm.cuda(0))


@pytest.mark.parametrize("call", [
    pytest.param(lambda vm, a, b: vm["main"](a, b), id="positional"),
    pytest.param(lambda vm, a, b: vm["main"](a=a, b=b), id="keywords"),
    pytest.param(lambda vm, a, b: vm.profile("main", a, b), id="profile"),
])
def test_tensor_of_another_device_type_is_refused_where_kernels_are_bound(call):
    vm = VirtualMachine(kernel_program("add"), relaxvm.cpu())
    good = relaxvm.tensor(np.ones(4, "float32"))
    with pytest.raises(ArgumentError, match=r"main: parameter b is a tensor on cuda:0, but this "
                                            r"VM runs on cpu:0; copy it there first "
                                            r"\(\.copyto\(cpu\(0\)\)\)"):
        call(vm, good, foreign([1, 2, 3, 4]))
    np.testing.assert_array_equal(vm["main"](good, good).numpy(), [2, 2, 2, 2])


def test_tensor_of_another_device_type_inside_a_tuple_is_refused():
    ib = ExecBuilder()
    with ib.function("main", num_inputs=2, param_names=["pair", "b"]):
        ib.emit_call("vm.builtin.tuple_getitem", args=[ib.r(0), ib.imm(1)], dst=ib.r(2))
        emit_alloc(ib, 3, 4, (4,))
        ib.emit_call("add", args=[ib.r(2), ib.r(1), ib.r(4)])
        ib.emit_ret(ib.r(4))
    vm = VirtualMachine(ib.get(), relaxvm.cpu())
    good = relaxvm.tensor(np.ones(4, "float32"))
    with pytest.raises(ArgumentError, match=r"main: parameter pair\[1\] is a tensor on cuda:0"):
        vm["main"]((good, foreign([1, 2, 3, 4])), good)


def test_tensor_on_another_device_of_the_same_type_is_accepted():
    vm = VirtualMachine(kernel_program("add"), relaxvm.cpu(0))
    other = relaxvm.tensor(np.ones(4, "float32"), relaxvm.cpu(1))
    np.testing.assert_array_equal(vm["main"](other, other).numpy(), [2, 2, 2, 2])


def test_functions_without_bound_kernels_take_tensors_of_any_device():
    ib = ExecBuilder()
    with ib.function("main", num_inputs=1, param_names=["x"]):
        ib.emit_call("test.routing.identity", args=[ib.r(0)], dst=ib.r(1))
        ib.emit_ret(ib.r(1))
    vm = VirtualMachine(ib.get(), relaxvm.cpu())
    x = foreign([1.0])
    assert vm["main"](x) is x
