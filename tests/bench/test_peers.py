"""The benchmark's peer adapters: every peer on the zoo's tiny models against onnxruntime
(and onnxruntime against ``onnx.reference``), the shape folding TVM needs, and the timing
helpers with an injected clock. The torch interpreter's ops: test_torch_eager.py."""

from __future__ import annotations

import os
import sys

import numpy as np
import onnx
import pytest
from onnx.reference import ReferenceEvaluator

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "bench"))
from peers import (  # noqa: E402
    OnnxRuntimePeer,
    RelaxvmSubject,
    TorchEagerPeer,
    TvmRelaxPeer,
    max_rel_error,
    measure,
    plan_repeats,
)
from peers.base import estimate  # noqa: E402
from peers.onnx_fold import fold_shapes, freeze_inputs  # noqa: E402

from relaxvm.models import build_model, example_inputs, list_models  # noqa: E402

ZOO_NAMES = [name for name, _ in list_models()]


# -- peers on the zoo's tiny models ----------------------------------------------------------
@pytest.fixture(scope="module", params=ZOO_NAMES)
def tiny(request: pytest.FixtureRequest) -> tuple[onnx.ModelProto, dict, list[np.ndarray]]:
    """A tiny zoo model, its example feeds and onnxruntime's outputs for them."""
    model = build_model(request.param, "tiny", seed=1)
    feeds = example_inputs(model, seed=2)
    return model, feeds, OnnxRuntimePeer().prepare(model, feeds, "cpu").outputs()


def assert_outputs_agree(got: list[np.ndarray], want: list[np.ndarray], tol: float) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape
        assert max_rel_error(g, w) <= tol


def test_onnxruntime_peer_agrees_with_onnx_reference(tiny):
    model, feeds, ort_outputs = tiny
    want = ReferenceEvaluator(model).run(None, feeds)
    assert_outputs_agree(ort_outputs, want, 1e-5)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
def test_torch_eager_peer_agrees_with_onnxruntime(tiny, device):
    peer = TorchEagerPeer()
    if peer.unavailable(device):
        pytest.skip(peer.unavailable(device))
    model, feeds, want = tiny
    runner = peer.prepare(model, feeds, device)
    assert_outputs_agree(runner.outputs(), want, 1e-5)
    runner.step()   # the timed call runs too


@pytest.mark.cuda
def test_onnxruntime_cuda_peer_agrees_with_cpu_session(tiny):
    peer = OnnxRuntimePeer()
    if peer.unavailable("cuda"):
        pytest.skip(peer.unavailable("cuda"))
    model, feeds, want = tiny
    assert_outputs_agree(peer.prepare(model, feeds, "cuda").outputs(), want, 1e-4)


@pytest.mark.parametrize("name", ["mlp", "bert", "gpt2_decode"])
def test_tvm_peer_agrees_with_onnxruntime(name):
    peer = TvmRelaxPeer()
    if peer.unavailable("cpu"):
        pytest.skip(peer.unavailable("cpu"))
    model = build_model(name, "tiny", seed=3)
    feeds = example_inputs(model, seed=4)
    want = OnnxRuntimePeer().prepare(model, feeds, "cpu").outputs()
    assert_outputs_agree(peer.prepare(model, feeds, "cpu").outputs(), want, 1e-5)


def test_tvm_peer_declines_cuda_with_reason():
    pytest.importorskip("tvm")
    assert TvmRelaxPeer().unavailable("cuda") == ("the TVM peer is CPU only (untuned CUDA "
                                                  "needs schedules)")


def test_relaxvm_subject_agrees_with_onnxruntime_when_its_compiler_is_present(tiny):
    subject = RelaxvmSubject()
    reason = subject.unavailable("cpu")
    if reason:
        pytest.skip(f"relaxvm compiler not available yet: {reason}")
    model, feeds, want = tiny
    runner = subject.prepare(model, feeds, "cpu")
    assert_outputs_agree(runner.outputs(), want, 1e-4)
    assert runner.peak_bytes() > 0
    assert runner.time(0.05).median > 0


# -- shape folding for TVM -------------------------------------------------------------------
@pytest.mark.parametrize("name", ["bert", "gpt2", "gpt2_decode", "vit"])
def test_fold_shapes_removes_shape_arithmetic_and_keeps_results(name):
    model = build_model(name, "tiny", seed=0)
    feeds = example_inputs(model, seed=0)
    folded = fold_shapes(freeze_inputs(model, {k: v.shape for k, v in feeds.items()}))
    ops = {node.op_type for node in folded.graph.node}
    assert not ops & {"Shape", "Range"}
    assert len(folded.graph.node) < len(model.graph.node)
    want = ReferenceEvaluator(model).run(None, feeds)
    got = ReferenceEvaluator(folded).run(None, feeds)
    assert_outputs_agree(got, want, 1e-6)


def test_freeze_inputs_writes_concrete_dims_and_leaves_the_original():
    model = build_model("bert", "tiny")
    frozen = freeze_inputs(model, {"input_ids": (2, 5)})
    dims = frozen.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims] == [2, 5]
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"


# -- timing helpers ----------------------------------------------------------------------------
class FakeClock:
    """Each step() advances time by ``per_call``; reading the clock costs nothing."""

    def __init__(self, per_call: float) -> None:
        self.now, self.per_call, self.calls = 0.0, per_call, 0

    def __call__(self) -> float:
        return self.now

    def step(self) -> None:
        self.now += self.per_call
        self.calls += 1


@pytest.mark.parametrize("per_call,budget,expected", [
    (1e-5, 2.0, (5000, 20)),     # fast: 50 ms blocks, capped at 20 of them
    (0.01, 0.5, (5, 10)),        # budget / block time
    (1.4, 3.0, (1, 3)),          # slow (TVM on a CNN): single calls, at least 3
])
def test_plan_repeats_sizes_blocks_to_the_budget(per_call, budget, expected):
    assert plan_repeats(per_call, budget) == expected


def test_measure_reports_the_median_per_call_and_stays_near_the_budget():
    clock = FakeClock(0.002)
    timing = measure(clock.step, budget_s=1.0, clock=clock)
    assert timing.median == pytest.approx(0.002)
    assert (timing.number, timing.repeat) == (25, 20)
    assert clock.calls == 1 + 3 + 25 * 20
    assert clock.now <= 1.0 + 4 * 0.002 + 1e-9


def test_measure_times_a_call_longer_than_the_budget_once():
    clock = FakeClock(5.0)
    timing = measure(clock.step, budget_s=3.0, clock=clock)
    assert (timing.median, timing.number, timing.repeat) == (5.0, 1, 1)
    assert clock.calls == 2     # the warm-up and the estimate, nothing more


def test_estimate_stops_after_the_cap_for_slow_calls():
    clock = FakeClock(0.8)
    assert estimate(clock.step, clock=clock, cap_s=0.5) == pytest.approx(0.8)
    assert clock.calls == 1


def test_max_rel_error_scales_by_the_reference_and_flags_shape_mismatch():
    want = np.array([100.0, -50.0])
    assert max_rel_error(want + np.array([0.1, 0.0]), want) == pytest.approx(1e-3)
    assert max_rel_error(np.array([0.5]), np.array([0.0])) == pytest.approx(0.5)
    assert max_rel_error(np.zeros(3), np.zeros(2)) == float("inf")


def test_onnxruntime_peer_is_available_on_cpu():
    assert OnnxRuntimePeer().unavailable("cpu") is None


def test_torch_peer_says_why_it_cannot_use_cuda():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        assert TorchEagerPeer().unavailable("cuda") is None
    else:
        assert TorchEagerPeer().unavailable("cuda") == (
            f"torch {torch.__version__} has no CUDA device (CPU build or no GPU)")
