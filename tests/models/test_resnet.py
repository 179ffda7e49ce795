"""ResNet-18/50 against a NumPy float64 forward pass, and the torchvision layouts."""

from __future__ import annotations

import numpy as np
import pytest
from zoo_numpy import Weights, conv2d, max_pool_3x3_s2
from zoo_oracle import assert_agree, initializers, run_ort, run_reference

from relaxvm.models import ZOO, build_model, count_params, example_inputs, model_ops


def _conv_bn(w: Weights, x: np.ndarray, conv: str, bn: str, stride: int) -> np.ndarray:
    kernel = w(conv + ".weight")
    y = conv2d(x, kernel, stride, kernel.shape[-1] // 2)
    per_channel = lambda n: w(f"{bn}.{n}")[:, None, None]
    y = (y - per_channel("running_mean")) / np.sqrt(per_channel("running_var") + 1e-5)
    return y * per_channel("weight") + per_channel("bias")


def _block(w: Weights, x: np.ndarray, prefix: str, stride: int, bottleneck: bool):
    relu = lambda t: np.maximum(t, 0.0)
    if bottleneck:
        y = relu(_conv_bn(w, x, prefix + "conv1", prefix + "bn1", 1))
        y = relu(_conv_bn(w, y, prefix + "conv2", prefix + "bn2", stride))
        y = _conv_bn(w, y, prefix + "conv3", prefix + "bn3", 1)
    else:
        y = relu(_conv_bn(w, x, prefix + "conv1", prefix + "bn1", stride))
        y = _conv_bn(w, y, prefix + "conv2", prefix + "bn2", 1)
    if prefix + "downsample.0.weight" in w.arrays:
        x = _conv_bn(w, x, prefix + "downsample.0", prefix + "downsample.1", stride)
    return relu(y + x)


def resnet_reference(w: Weights, x: np.ndarray, layers, bottleneck: bool) -> np.ndarray:
    x = max_pool_3x3_s2(np.maximum(_conv_bn(w, x, "conv1", "bn1", 2), 0.0))
    for stage, count in enumerate(layers):
        for i in range(count):
            stride = 2 if stage > 0 and i == 0 else 1
            x = _block(w, x, f"layer{stage + 1}.{i}.", stride, bottleneck)
    return w.dense(x.mean(axis=(2, 3)), "fc")


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_tiny_resnet_matches_numpy_forward_pass(name):
    model = build_model(name, "tiny", seed=3)
    feeds = example_inputs(model, seed=3, batch=2)
    cfg = ZOO[name].config("tiny")
    expected = resnet_reference(Weights(initializers(model)),
                                feeds["pixel_values"].astype(np.float64), cfg.layers,
                                cfg.block == "bottleneck")
    for run in (run_ort, run_reference):
        assert_agree(run(model, feeds)["logits"], expected)


@pytest.mark.parametrize("name, convs, blocks, published", [
    ("resnet18", 20, 8, 11_689_512), ("resnet50", 53, 16, 25_557_032)])
def test_imagenet_size_has_torchvision_layout_and_parameter_count(name, convs, blocks,
                                                                  published):
    model = build_model(name, "imagenet")
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("Conv") == convs
    assert ops.count("BatchNormalization") == convs   # one BN per conv: nothing folded
    assert ops.count("Add") == blocks
    assert count_params(model) == pytest.approx(published, rel=0.05)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", 3, 224, 224]


def test_stem_is_7x7_stride_2_conv_then_3x3_stride_2_max_pool():
    nodes = build_model("resnet18", "imagenet").graph.node
    conv = next(n for n in nodes if n.op_type == "Conv")
    pool = next(n for n in nodes if n.op_type == "MaxPool")
    attrs = lambda n: {a.name: list(a.ints) for a in n.attribute}
    assert attrs(conv)["kernel_shape"] == [7, 7] and attrs(conv)["strides"] == [2, 2]
    assert attrs(pool) == {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}


def test_batch_norm_running_variance_is_positive():
    weights = initializers(build_model("resnet50", "tiny"))
    variances = [v for k, v in weights.items() if k.endswith("running_var")]
    assert variances and all((v > 0).all() for v in variances)


def test_resnet_uses_the_cnn_op_set():
    assert model_ops(build_model("resnet50")) == [
        "Add", "BatchNormalization", "Conv", "Flatten", "Gemm", "GlobalAveragePool",
        "MaxPool", "Relu"]
