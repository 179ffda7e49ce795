"""Device placement and cross-device copies (relaxvm/compiler/passes/placement.py)."""

from __future__ import annotations

import numpy as np
import pytest

import relaxvm
from relaxvm.compiler import build
from relaxvm.compiler.passes.placement import place_devices
from relaxvm.errors import BuildError
from relaxvm.vm import VirtualMachine
from tests.compiler.graphs import mlp_graph, mlp_reference

CPU0, CPU1 = relaxvm.cpu(0), relaxvm.cpu(1)


def test_everything_runs_on_the_first_device_by_default() -> None:
    graph, _ = mlp_graph()
    place_devices(graph, [CPU0])
    assert {n.device for n in graph.nodes} == {CPU0}
    assert all(n.op != "to_device" for n in graph.nodes)


def test_crossing_devices_inserts_one_copy_per_value_and_device() -> None:
    graph, _ = mlp_graph()
    relu = next(n for n in graph.nodes if n.op == "relu")
    place_devices(graph, [CPU0, CPU1], {relu.name: CPU1})
    ops = [(n.op, n.device) for n in graph.nodes]
    assert ops == [("matmul", CPU0), ("add", CPU0), ("to_device", CPU1), ("relu", CPU1),
                   ("to_device", CPU0), ("multiply", CPU0), ("matmul", CPU0)]


def test_placing_on_a_device_outside_the_list_is_an_error() -> None:
    graph, _ = mlp_graph()
    with pytest.raises(BuildError, match=r"node relu\d+ is placed on cpu:1, which is not one of "
                                         r"the executable's devices \['cpu:0'\]"):
        place_devices(graph, [CPU0], {"relu": CPU1})


def test_two_cpu_devices_program_runs_and_copies_between_pools() -> None:
    graph, params = mlp_graph()
    exe = build(graph, target=[CPU0, CPU1], placement={"matmul": CPU1})
    text = exe.as_text()
    assert "vm.builtin.to_device" in text and "i1, i1" in text
    x = np.random.default_rng(1).standard_normal((4, 8)).astype(np.float32)
    out = VirtualMachine(exe, [CPU0, CPU1])["main"](x)
    assert out.device == CPU1
    np.testing.assert_allclose(out.numpy(), mlp_reference(x, params), rtol=1e-5, atol=1e-5)
