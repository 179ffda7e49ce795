"""Static memory planning (relaxvm/compiler/passes/memplan.py)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import relaxvm
from relaxvm.compiler import build, evaluate, lower
from relaxvm.compiler.ir import Graph
from relaxvm.compiler.passes.memplan import (
    Interval,
    check_plan,
    peak_live,
    place_offsets,
    plan_memory,
)
from relaxvm.compiler.passes.placement import place_devices
from relaxvm.models.zoo import build_model
from relaxvm.vm import VirtualMachine
from tests.compiler.graphs import GraphMaker, mlp_graph


@st.composite
def random_dags(draw: st.DrawFn) -> Graph:
    """Random graphs of relu / add / concat / slice over (rows, 4) tensors."""
    g = GraphMaker()
    values = [g.input(f"x{i}", (draw(st.integers(1, 6)), 4)) for i in range(draw(
        st.integers(1, 3)))]
    for _ in range(draw(st.integers(1, 14))):
        kind = draw(st.sampled_from(["relu", "add", "concat", "slice"]))
        a = draw(st.sampled_from(values))
        if kind == "relu":
            values.append(g.op("relu", a))
        elif kind == "add":
            same = [v for v in values if v.shape == a.shape]
            values.append(g.op("add", a, draw(st.sampled_from(same))))
        elif kind == "concat":
            values.append(g.op("concat", a, draw(st.sampled_from(values)), axis=0))
        else:
            rows = a.shape[0]
            start = draw(st.integers(0, rows - 1))
            values.append(g.op("slice", a, starts=(start,), ends=(rows,), axes=(0,),
                               steps=(1,)))
    outs = draw(st.lists(st.sampled_from(values[len(g.graph.inputs):] or values), min_size=0,
                         max_size=2))
    return g.done(values[-1], *outs)


@settings(max_examples=80, deadline=None)
@given(random_dags())
def test_plan_never_overlaps_tensors_alive_together(graph: Graph) -> None:
    place_devices(graph, [relaxvm.cpu(0)])
    plan = plan_memory(graph)
    check_plan(plan)
    for device, size in plan.arena_size.items():
        assert size >= plan.lower_bound[device]


@settings(max_examples=25, deadline=None)
@given(random_dags(), st.integers(0, 2 ** 16))
def test_planned_program_computes_what_the_graph_means(graph: Graph, seed: int) -> None:
    rng = np.random.default_rng(seed)
    inputs = [rng.standard_normal(v.shape).astype(np.float32) for v in graph.inputs]
    want = evaluate(graph, inputs)
    vm = VirtualMachine(build(graph), relaxvm.cpu())
    got = vm["main"](*inputs)
    got = got if isinstance(got, tuple) else (got,)
    for w, g in zip(want, got):
        np.testing.assert_allclose(g.numpy(), w, rtol=1e-6)


def test_overlap_checker_catches_a_bad_plan() -> None:
    a, b = Interval(1, 64, 0, 3, offset=0), Interval(2, 64, 2, 5, offset=32)
    from relaxvm.compiler.passes.memplan import MemoryPlan
    plan = MemoryPlan(intervals={"dev": [a, b]})
    with pytest.raises(ValueError, match="tensors 1 and 2 are alive together but share bytes"):
        check_plan(plan)


def test_first_fit_reuses_memory_of_dead_tensors() -> None:
    items = [Interval(1, 100, 0, 1), Interval(2, 100, 1, 2), Interval(3, 100, 2, 3)]
    assert place_offsets(items) == 200 == peak_live(items)
    assert items[0].offset == items[2].offset


@pytest.mark.parametrize("name", ["mlp", "resnet18", "resnet50", "bert", "gpt2", "vit"])
def test_zoo_plans_stay_within_five_percent_of_the_lower_bound(name: str) -> None:
    shapes = {"batch": 2, "sequence": 8}
    model = build_model(name)
    names = {d.dim_param for i in model.graph.input for d in i.type.tensor_type.shape.dim}
    lowered = lower(model, shape_dict={k: v for k, v in shapes.items() if k in names})
    plan = lowered.plan
    check_plan(plan)
    assert plan.planned_bytes <= 1.05 * plan.lower_bound_bytes
    assert plan.planned_bytes < plan.unplanned_bytes
    assert len(plan.arena_size) == 1


def test_views_returned_values_and_symbolic_shapes_are_not_in_the_arena() -> None:
    g = GraphMaker()
    x = g.input("x", ("n", 6))
    r = g.op("relu", x)
    v = g.op("reshape", r, shape=(x.shape[0], 2, 3))
    y = g.op("relu", v)
    graph = g.done(y)
    place_devices(graph, [relaxvm.cpu(0)])
    plan = plan_memory(graph)
    assert plan.kind[r.uid] == "own" and plan.kind[v.uid] == "view"
    assert plan.kind[y.uid] == "own" and plan.base[v.uid] is r
    static, _ = mlp_graph()
    place_devices(static, [relaxvm.cpu(0)])
    plan = plan_memory(static)
    assert plan.kind[static.outputs[0].uid] == "own"
    assert sorted(plan.kind[n.outputs[0].uid] for n in static.nodes[:-1]) == ["arena"] * 4


def test_a_view_keeps_its_base_alive() -> None:
    g = GraphMaker()
    x = g.input("x", (4, 6))
    base = g.op("relu", x)
    view = g.op("reshape", base, shape=(24,))
    other = g.op("relu", x)
    late = g.op("add", view, g.op("reshape", other, shape=(24,)))
    graph = g.done(g.op("relu", late))
    place_devices(graph, [relaxvm.cpu(0)])
    plan = plan_memory(graph)
    spans = {i.uid: (i.start, i.end) for i in plan.intervals[relaxvm.cpu(0)]}
    assert spans[base.uid][1] == 4  # extended to the add that reads the view
    check_plan(plan)
