"""One program on two devices (issue 4, item 3): main runs on the first, a second VM
function on the other, with to_device copies both ways; each device allocates from its
own pool kind per memory_cfg. cpu(0)+cpu(1) in CI, cuda(0)+cpu(0) where a GPU is present."""

from __future__ import annotations

import numpy as np
import pytest

import relaxvm
from relaxvm.vm import ExecBuilder, FuncKind, VirtualMachine

F32 = relaxvm.DataType("float32")
U8 = relaxvm.DataType("uint8")

PAIRS = [
    pytest.param(("cpu:0", "cpu:1"), id="cpu0+cpu1"),
    pytest.param(("cuda:0", "cpu:0"), id="cuda0+cpu0", marks=pytest.mark.cuda),
]


def hetero_program(first: relaxvm.Device, second: relaxvm.Device):
    """main(x, w) on VM device 0: m = x @ w; h = m copied to ``second``; r = post(h) (VM
    device 1); back = r copied to ``first``; out = back * x; returns (out, r).
    post(h) on VM device 1: relu(h)."""
    ib = ExecBuilder()
    ib.declare_function("post", FuncKind.VM_FUNC)
    with ib.function("main", num_inputs=2, param_names=["x", "w"]):
        ib.emit_call("vm.builtin.alloc_storage", args=[ib.vm_state(), (64,), ib.imm(0), U8],
                     dst=ib.r(2))
        ib.emit_call("vm.builtin.alloc_tensor", args=[ib.r(2), ib.imm(0), (4, 4), F32],
                     dst=ib.r(3))
        ib.emit_call("matmul", args=[ib.r(0), ib.r(1), ib.r(3)])
        ib.emit_call("vm.builtin.to_device",
                     args=[ib.r(3), ib.imm(second.device_type), ib.imm(second.index)],
                     dst=ib.r(4))
        ib.emit_call("post", args=[ib.r(4)], dst=ib.r(5))
        ib.emit_call("vm.builtin.to_device",
                     args=[ib.r(5), ib.imm(first.device_type), ib.imm(first.index)],
                     dst=ib.r(6))
        ib.emit_call("vm.builtin.alloc_storage", args=[ib.vm_state(), (64,), ib.imm(0), U8],
                     dst=ib.r(7))
        ib.emit_call("vm.builtin.alloc_tensor", args=[ib.r(7), ib.imm(0), (4, 4), F32],
                     dst=ib.r(8))
        ib.emit_call("multiply", args=[ib.r(6), ib.r(0), ib.r(8)])
        ib.emit_call("vm.builtin.make_tuple", args=[ib.r(8), ib.r(5)], dst=ib.r(9))
        ib.emit_ret(ib.r(9))
    with ib.function("post", num_inputs=1, param_names=["h"]):
        ib.emit_call("vm.builtin.alloc_storage", args=[ib.vm_state(), (64,), ib.imm(1), U8],
                     dst=ib.r(1))
        ib.emit_call("vm.builtin.alloc_tensor", args=[ib.r(1), ib.imm(0), (4, 4), F32],
                     dst=ib.r(2))
        ib.emit_call("relu", args=[ib.r(0), ib.r(2)])
        ib.emit_ret(ib.r(2))
    return ib.get()


def setup(pair):
    first, second = (relaxvm.device(d) for d in pair)
    vm = VirtualMachine(hetero_program(first, second), [first, second],
                        memory_cfg={first: "pooled", second: "naive"})
    rng = np.random.default_rng(7)
    x, w = (rng.standard_normal((4, 4)).astype("float32") for _ in range(2))
    return vm, first, second, x, w


def counts(allocator):
    stats = allocator.stats()
    return {k: stats[k] for k in ("num_allocs", "num_frees", "num_cache_hits",
                                  "reserved_bytes.current")}


@pytest.mark.parametrize("pair", PAIRS)
def test_functions_run_on_their_devices_with_copies_both_ways(pair, fresh_memory):
    vm, first, second, x, w = setup(pair)
    out, post = vm["main"](relaxvm.tensor(x, first), relaxvm.tensor(w, first))
    assert out.device == first and post.device == second
    np.testing.assert_allclose(post.numpy(), np.maximum(x @ w, 0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out.numpy(), np.maximum(x @ w, 0) * x, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("pair", PAIRS)
def test_each_device_draws_on_its_own_pool_kind(pair, fresh_memory):
    vm, first, second, x, w = setup(pair)
    args = (relaxvm.tensor(x, first), relaxvm.tensor(w, first))
    pooled = fresh_memory.get_allocator(first, "pooled")
    naive = fresh_memory.get_allocator(second, "naive")
    p0, n0 = counts(pooled), counts(naive)

    result = vm["main"](*args)
    p1, n1 = counts(pooled), counts(naive)
    # first: two alloc_storage + the copy back; second: the copy there + post's storage.
    assert p1["num_allocs"] - p0["num_allocs"] == 3
    assert n1["num_allocs"] - n0["num_allocs"] == 2
    del result
    n2 = counts(naive)
    assert n2["num_frees"] - n0["num_frees"] == 2 and n2["reserved_bytes.current"] == 0

    vm["main"](*args)                                   # again: only the pool reuses
    p3, n3 = counts(pooled), counts(naive)
    assert p3["num_cache_hits"] - p1["num_cache_hits"] == 3
    assert p3["reserved_bytes.current"] == p1["reserved_bytes.current"]
    assert n3["num_cache_hits"] == 0 and n3["num_allocs"] - n2["num_allocs"] == 2
    used = {name for name, s in fresh_memory.stats().items() if s["num_allocs"]}
    assert used == {f"{first}/pooled", f"{second}/naive"}


@pytest.mark.parametrize("pair", PAIRS)
def test_profile_labels_every_row_with_the_device_it_ran_on(pair, fresh_memory):
    vm, first, second, x, w = setup(pair)
    report = vm.profile("main", relaxvm.tensor(x, first), relaxvm.tensor(w, first))
    rows = [(r["Name"], r["Device"]) for r in report.calls]
    f, s = str(first), str(second)
    assert rows == [
        ("vm.builtin.alloc_storage", f), ("vm.builtin.alloc_tensor", f), ("matmul", f),
        ("vm.builtin.to_device", f),                       # labelled by its source
        ("vm.builtin.alloc_storage", s), ("vm.builtin.alloc_tensor", s), ("relu", s),
        ("vm.builtin.to_device", s),
        ("vm.builtin.alloc_storage", f), ("vm.builtin.alloc_tensor", f), ("multiply", f),
        ("vm.builtin.make_tuple", f)]
    assert set(report.device_metrics) == {f, s}
