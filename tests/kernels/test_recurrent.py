"""lstm, gru and rnn against onnx.reference (directions, layouts, optional inputs, dtypes)
and onnxruntime (sequence_lens, clip, activations, input_forget: onnx.reference ignores
those), plus the kernels' argument errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from kernel_harness import check, dtype_params, random_array, run_multi, skip_unsupported, wide
from onnx import helper
from onnx.reference import ReferenceEvaluator

from relaxvm.errors import ArgumentError
from relaxvm.kernels import kernel_signature

OPSET = 14
ONNX_OPS = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}
GATES = {"lstm": 4, "gru": 3, "rnn": 1}
#: The ONNX input names of each op, in order.
INPUTS = {"lstm": ("x", "w", "r", "b", "sequence_lens", "initial_h", "initial_c", "p"),
          "gru": ("x", "w", "r", "b", "sequence_lens", "initial_h"),
          "rnn": ("x", "w", "r", "b", "sequence_lens", "initial_h")}
T, B, IN, H = 5, 3, 4, 3


def make_inputs(op: str, direction: str = "forward", layout: int = 0, dtype: str = "float32",
                optional: bool = True, seed: int = 0) -> dict[str, np.ndarray]:
    """Random inputs for ``op``; with ``optional``, b, initial_h (and initial_c, p) too."""
    rng = np.random.default_rng(seed)
    d, g = (2 if direction == "bidirectional" else 1), GATES[op] * H

    def rand(*shape: int) -> np.ndarray:
        return random_array(rng, shape, dtype, -1.0, 1.0)

    inputs = {"x": rand(B, T, IN) if layout else rand(T, B, IN), "w": rand(d, g, IN),
              "r": rand(d, g, H)}
    if optional:
        state = (B, d, H) if layout else (d, B, H)
        inputs.update(b=rand(d, 2 * g), initial_h=rand(*state))
        if op == "lstm":
            inputs.update(initial_c=rand(*state), p=rand(d, 3 * H))
    return inputs


def _model(op: str, inputs: dict[str, np.ndarray], attrs: dict[str, Any]) -> Any:
    """A one-node model of ``op`` reading the given inputs (the rest left out)."""
    names = [n if n in inputs else "" for n in INPUTS[op]]
    while not names[-1]:
        names.pop()
    outs = ["Y", "Y_h", "Y_c"][:3 if op == "lstm" else 2]
    node = helper.make_node(ONNX_OPS[op], names, outs, hidden_size=H, **attrs)
    infos = [helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
             for k, v in inputs.items()]
    elem = helper.np_dtype_to_tensor_dtype(inputs["x"].dtype)
    graph = helper.make_graph([node], "g", infos,
                              [helper.make_tensor_value_info(o, elem, None) for o in outs])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    return model


def onnx_reference(op: str, inputs: dict[str, np.ndarray], **attrs: Any) -> list[np.ndarray]:
    return list(ReferenceEvaluator(_model(op, inputs, attrs)).run(None, inputs))


def ort_reference(op: str, inputs: dict[str, np.ndarray], **attrs: Any) -> list[np.ndarray]:
    session = ort.InferenceSession(_model(op, inputs, attrs).SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    return list(session.run(None, inputs))


def run_op(dev: Any, op: str, inputs: dict[str, np.ndarray], dtype: str = "float32",
           **attrs: Any) -> list[np.ndarray]:
    """Call the kernel with every ONNX input (None where absent) and its outputs' shapes."""
    d = 2 if attrs.get("direction") == "bidirectional" else 1
    layout = attrs.get("layout", 0)
    x = inputs["x"]
    steps, batch = (x.shape[1], x.shape[0]) if layout else x.shape[:2]
    y = (batch, steps, d, H) if layout else (steps, d, batch, H)
    state = (batch, d, H) if layout else (d, batch, H)
    outs = [(y, dtype)] + [(state, dtype)] * (2 if op == "lstm" else 1)
    sig = kernel_signature(op)
    unknown = set(attrs) - set(sig.attrs)
    assert not unknown, f"{op} takes no {unknown}"
    values = [attrs.get(k, default) for k, default in sig.attrs.items()]
    return run_multi(op, dev, [inputs.get(n) for n in INPUTS[op]], outs, values)


def check_all(op: str, got: list[np.ndarray], expected: list[np.ndarray], dtype: str) -> None:
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        check(op, g, np.asarray(e), dtype)


@pytest.mark.parametrize("layout", [0, 1])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("op", ["lstm", "gru", "rnn"])
def test_matches_onnx_reference(dev: Any, op: str, direction: str, layout: int) -> None:
    inputs = make_inputs(op, direction, layout, seed=len(direction) + layout)
    attrs = {"direction": direction, "layout": layout}
    check_all(op, run_op(dev, op, inputs, **attrs), onnx_reference(op, inputs, **attrs),
              "float32")


@pytest.mark.parametrize("op", ["lstm", "gru", "rnn"])
def test_without_optional_inputs(dev: Any, op: str) -> None:
    inputs = make_inputs(op, "bidirectional", optional=False, seed=3)
    attrs = {"direction": "bidirectional"}
    check_all(op, run_op(dev, op, inputs, **attrs), onnx_reference(op, inputs, **attrs),
              "float32")


@pytest.mark.parametrize("op", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("dtype", dtype_params("lstm"))
def test_dtypes_against_a_float64_reference(dev: Any, op: str, dtype: str) -> None:
    skip_unsupported(dev, dtype)
    inputs = make_inputs(op, "bidirectional", dtype=dtype, seed=5)
    expected = onnx_reference(op, {k: wide(v) for k, v in inputs.items()},
                              direction="bidirectional")
    check_all(op, run_op(dev, op, inputs, dtype, direction="bidirectional"), expected, dtype)


@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
def test_gru_linear_before_reset(dev: Any, direction: str) -> None:
    inputs = make_inputs("gru", direction, seed=6)
    attrs = {"direction": direction, "linear_before_reset": 1}
    check_all("gru", run_op(dev, "gru", inputs, **attrs), onnx_reference("gru", inputs, **attrs),
              "float32")


@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("op", ["lstm", "gru", "rnn"])
def test_sequence_lens_match_onnxruntime(dev: Any, op: str, direction: str) -> None:
    inputs = make_inputs(op, direction, seed=7)
    inputs["sequence_lens"] = np.array([T, 2, 0], np.int32)
    got = run_op(dev, op, inputs, direction=direction)
    check_all(op, got, ort_reference(op, inputs, direction=direction), "float32")
    assert not got[0][2:, :, 1].any() and not got[0][:, :, 2].any()


@pytest.mark.parametrize("op", ["lstm", "gru", "rnn"])
def test_batch_first_layout_is_the_transposed_sequence_first_result(dev: Any, op: str) -> None:
    inputs = make_inputs(op, "bidirectional", seed=8)
    inputs["sequence_lens"] = np.array([3, T, 1], np.int64)
    first = run_op(dev, op, inputs, direction="bidirectional")
    batch_first = {k: v.swapaxes(0, 1) if k in ("x", "initial_h", "initial_c") else v
                   for k, v in inputs.items()}
    got = run_op(dev, op, batch_first, direction="bidirectional", layout=1)
    check(op, got[0], first[0].transpose(2, 0, 1, 3), "float32")
    for g, f in zip(got[1:], first[1:], strict=True):
        check(op, g, f.swapaxes(0, 1), "float32")


ACTIVATION_CASES = {
    "lstm": [(["HardSigmoid", "LeakyRelu", "Elu"], [0.3, 0.1, 0.8], [0.6]),
             (["Sigmoid", "Softsign", "Softplus", "sigmoid", "ScaledTanh", "Affine"],
              [1.5, 0.5], [0.7, 0.2])],
    "gru": [(["Relu", "Tanh", "HardSigmoid", "ThresholdedRelu"], [0.25, 0.1], []),
            (["Sigmoid", "Affine"], [], [])],
    "rnn": [(["Relu", "LeakyRelu"], [0.2], []), (["ScaledTanh"], [0.9, 0.3], [1.2]),
            (["Elu"], [], [])],
}


@pytest.mark.parametrize(("op", "case"), [(op, k) for op, cases in ACTIVATION_CASES.items()
                                          for k in range(len(cases))])
def test_activations_and_clip_match_onnxruntime(dev: Any, op: str, case: int) -> None:
    names, alphas, betas = ACTIVATION_CASES[op][case]
    per = {"lstm": 3, "gru": 2, "rnn": 1}[op]
    direction = "bidirectional" if len(names) == 2 * per else "forward"
    attrs: dict[str, Any] = {"direction": direction, "activations": names}
    if alphas:
        attrs["activation_alpha"] = alphas
    if betas:
        attrs["activation_beta"] = betas
    if case == 1:
        attrs["clip"] = 0.6
    if "Affine" in names and not betas:  # onnxruntime's Affine defaults to 0 * x + 0
        attrs["activation_alpha"], attrs["activation_beta"] = [1.0], [0.0]
    inputs = make_inputs(op, direction, seed=9 + case)
    check_all(op, run_op(dev, op, inputs, **attrs), ort_reference(op, inputs, **attrs),
              "float32")


@pytest.mark.parametrize("peepholes", [False, True])
def test_lstm_input_forget_and_clip_match_onnxruntime(dev: Any, peepholes: bool) -> None:
    inputs = make_inputs("lstm", "bidirectional", seed=12)
    if not peepholes:
        del inputs["p"]
    attrs = {"direction": "bidirectional", "input_forget": 1, "clip": 0.8}
    check_all("lstm", run_op(dev, "lstm", inputs, **attrs),
              ort_reference("lstm", inputs, **attrs), "float32")


@pytest.mark.parametrize(("attrs", "message"), [
    ({"direction": "sideways"},
     "lstm: direction must be one of forward, reverse, bidirectional, got 'sideways'"),
    ({"layout": 2}, "lstm: layout must be 0 or 1, got 2"),
    ({"hidden_size": 7}, "lstm: hidden_size must match r's last axis 3, got 7"),
    ({"activations": ["Sigmoid", "Tanh"]},
     r"lstm: activations must list 3 functions per direction \(3 in all\), got 2"),
    ({"activations": ["Sigmoid", "Tanh", "Swish"]},
     "lstm: activations must be among .* \\(any case\\), got 'Swish'"),
])
def test_lstm_rejects_bad_attributes(dev: Any, attrs: dict[str, Any], message: str) -> None:
    with pytest.raises(ArgumentError, match=message):
        run_op(dev, "lstm", make_inputs("lstm"), **attrs)


def test_rejects_weights_of_the_wrong_shape(dev: Any) -> None:
    inputs = make_inputs("gru")
    inputs["w"] = inputs["w"][:, :, :2]
    with pytest.raises(ArgumentError, match=r"gru: w must have shape \[1, 9, 4\], got \[1, 9, 2\]"):
        run_op(dev, "gru", inputs)


def test_rejects_weights_for_the_wrong_number_of_directions(dev: Any) -> None:
    with pytest.raises(ArgumentError, match=r"rnn: w must have shape \[2, 3, 4\], got \[1, 3, 4\]"):
        run_op(dev, "rnn", make_inputs("rnn"), direction="bidirectional")


def test_rejects_sequence_lens_longer_than_the_sequence(dev: Any) -> None:
    if dev.device_type != 1:
        pytest.skip("checked on the CPU only (reading lengths on CUDA would sync)")
    inputs = make_inputs("rnn")
    inputs["sequence_lens"] = np.array([1, T + 1, 2], np.int32)
    with pytest.raises(ArgumentError, match=rf"rnn: sequence_lens must be in \[0, {T}\], got "
                                            rf"values from 1 to {T + 1}"):
        run_op(dev, "rnn", inputs)


def test_rejects_a_wrong_number_of_outputs(dev: Any) -> None:
    inputs = make_inputs("lstm")
    with pytest.raises(ArgumentError, match=r"lstm: outs must be \(Y, Y_h, Y_c\), got 2 tensors"):
        run_multi("lstm", dev, [inputs.get(n) for n in INPUTS["lstm"]],
                  [((T, 1, B, H), "float32"), ((1, B, H), "float32")])

