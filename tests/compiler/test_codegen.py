"""Bytecode generation (relaxvm/compiler/codegen.py), read through the VM."""

from __future__ import annotations

import numpy as np
import pytest

import relaxvm
from relaxvm.compiler import build
from relaxvm.errors import ArgumentError
from relaxvm.vm import VirtualMachine
from tests.compiler.graphs import GraphMaker, mlp_graph, mlp_reference


def _calls(exe: relaxvm.Executable, name: str) -> list[str]:
    return [line for line in exe.as_text().splitlines() if f"call  {name}" in line]


def test_static_program_allocates_one_arena_and_checks_its_parameter() -> None:
    graph, params = mlp_graph()
    exe = build(graph)
    assert len(_calls(exe, "vm.builtin.alloc_storage")) == 2  # the arena and the output
    assert len(_calls(exe, "vm.builtin.check_tensor_info")) == 1
    assert "main: parameter x expects float32[4, 8]" in exe.stats()
    x = np.random.default_rng(0).standard_normal((4, 8)).astype(np.float32)
    out = VirtualMachine(exe, relaxvm.cpu())["main"](x)
    np.testing.assert_allclose(out.numpy(), mlp_reference(x, params), rtol=1e-5, atol=1e-5)


def test_wrong_argument_dtype_names_the_parameter() -> None:
    vm = VirtualMachine(build(mlp_graph()[0]), relaxvm.cpu())
    with pytest.raises(ArgumentError, match=r"main: parameter x expects float32\[4, 8\], got "
                                            r"float64\[4, 8\]"):
        vm["main"](np.zeros((4, 8), np.float64))


def test_wrong_static_dimension_names_the_parameter() -> None:
    vm = VirtualMachine(build(mlp_graph()[0]), relaxvm.cpu())
    with pytest.raises(ArgumentError, match=r"main: parameter x expects float32\[4, 8\], got "
                                            r"float32\[4, 9\]"):
        vm["main"](np.zeros((4, 9), np.float32))


def test_one_symbol_must_agree_across_parameters() -> None:
    g = GraphMaker()
    x, y = g.input("x", ("n", 2)), g.input("y", ("n", 2))
    vm = VirtualMachine(build(g.done(g.op("add", x, y))), relaxvm.cpu())
    np.testing.assert_array_equal(vm["main"](np.ones((3, 2), np.float32),
                                             np.ones((3, 2), np.float32)).numpy(), 2)
    with pytest.raises(ArgumentError, match=r"main: parameter y expects float32\[n, 2\], got "
                                            r"float32\[4, 2\]"):
        vm["main"](np.ones((3, 2), np.float32), np.ones((4, 2), np.float32))


def test_symbolic_program_uses_the_shape_heap_and_frees_dead_tensors() -> None:
    graph, params = mlp_graph("batch")
    exe = build(graph, opt_level=1)
    assert len(_calls(exe, "vm.builtin.alloc_shape_heap")) == 1
    assert len(_calls(exe, "shape_func")) == 1
    assert len(_calls(exe, "vm.builtin.null_value")) >= 3
    vm = VirtualMachine(exe, relaxvm.cpu())
    for batch in (1, 6):
        x = np.random.default_rng(batch).standard_normal((batch, 8)).astype(np.float32)
        np.testing.assert_allclose(vm["main"](x).numpy(), mlp_reference(x, params), rtol=1e-5,
                                   atol=1e-5)


def test_several_outputs_return_a_tuple_including_inputs_and_constants() -> None:
    g = GraphMaker()
    x = g.input("x", (2,))
    c = g.const(np.float32([5, 6]))
    vm = VirtualMachine(build(g.done(g.op("relu", x), x, c)), relaxvm.cpu())
    data = np.float32([-1, 2])
    relu, same, const = vm["main"](data)
    np.testing.assert_array_equal(relu.numpy(), [0, 2])
    np.testing.assert_array_equal(same.numpy(), data)
    np.testing.assert_array_equal(const.numpy(), [5, 6])


def test_reshape_is_a_view_unless_returned() -> None:
    g = GraphMaker()
    x = g.input("x", (2, 3))
    inner = g.op("reshape", g.op("relu", x), shape=(3, 2))
    exe = build(g.done(g.op("reshape", g.op("exp", inner), shape=(6,))))
    assert len(_calls(exe, "vm.builtin.reshape")) == 1
    assert len([c for c in _calls(exe, "reshape ") if "vm.builtin" not in c]) == 1
    data = np.arange(6, dtype=np.float32).reshape(2, 3) - 2
    out = VirtualMachine(exe, relaxvm.cpu())["main"](data).numpy()
    np.testing.assert_allclose(out, np.exp(np.maximum(data, 0)).reshape(6), rtol=1e-6)
