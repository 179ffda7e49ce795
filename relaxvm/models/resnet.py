"""ResNet-18 (basic blocks) and ResNet-50 (bottleneck blocks), torchvision layout.

Conv + BatchNormalization (kept separate, not folded into the conv, so the VM sees the
BN op) + Relu; a 7x7/2 stem conv and 3x3/2 MaxPool; stages of residual blocks joined by
``Add``; GlobalAveragePool, Flatten and a Gemm classifier. The bottleneck block strides
in its 3x3 conv (torchvision's "v1.5"). Input ``pixel_values`` float32 [batch, 3, H, W].

The last BatchNorm of each residual branch gets a small scale (about 0.3), as trained
ResNets have, so the residual stream grows slowly with depth and activations stay O(1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import onnx
from onnx import TensorProto

from relaxvm.models.graph_builder import GraphBuilder
from relaxvm.models.layers import gemm

RESIDUAL_GAMMA = 0.3


@dataclass(frozen=True)
class ResNetConfig:
    """Block kind, blocks per stage, base width per stage, stem width, image and classes."""

    block: str
    layers: tuple[int, ...]
    widths: tuple[int, ...]
    stem: int = 64
    image: int = 224
    classes: int = 1000


RESNET18_SIZES = {
    "tiny": ResNetConfig("basic", (1, 1), (8, 16), stem=8, image=32, classes=10),
    "imagenet": ResNetConfig("basic", (2, 2, 2, 2), (64, 128, 256, 512)),
}
RESNET50_SIZES = {
    "tiny": ResNetConfig("bottleneck", (1, 1), (4, 8), stem=8, image=32, classes=10),
    "imagenet": ResNetConfig("bottleneck", (3, 4, 6, 3), (64, 128, 256, 512)),
}
EXPANSION = {"basic": 1, "bottleneck": 4}


def conv_bn(b: GraphBuilder, x: str, names: tuple[str, str], in_c: int, out_c: int,
            kernel: int, stride: int, relu: bool, gamma: float = 1.0) -> str:
    """Conv (He init, no bias) -> BatchNormalization (inference form) [-> Relu]."""
    with b.scope(names[0]):
        fan_in = in_c * kernel * kernel
        w = b.normal("weight", (out_c, in_c, kernel, kernel), math.sqrt(2.0 / fan_in))
        pad = kernel // 2
        y = b.op("Conv", x, w, kernel_shape=[kernel, kernel], strides=[stride, stride],
                 pads=[pad, pad, pad, pad], dilations=[1, 1], group=1)
    with b.scope(names[1]):
        scale = b.normal("weight", (out_c,), 0.05 * gamma, mean=gamma)
        shift = b.normal("bias", (out_c,), 0.02)
        mean = b.normal("running_mean", (out_c,), 0.05)
        var = b.uniform("running_var", (out_c,), 0.8, 1.2)
        y = b.op("BatchNormalization", y, scale, shift, mean, var, epsilon=1e-5,
                 momentum=0.9)
        return b.op("Relu", y) if relu else y


def _shortcut(b: GraphBuilder, x: str, in_c: int, out_c: int, stride: int) -> str:
    if stride == 1 and in_c == out_c:
        return x
    return conv_bn(b, x, ("downsample.0", "downsample.1"), in_c, out_c, 1, stride, False)


def _join(b: GraphBuilder, branch: str, shortcut: str) -> str:
    return b.op("Relu", b.op("Add", branch, shortcut))


def basic_block(b: GraphBuilder, x: str, in_c: int, width: int, stride: int) -> str:
    """3x3 conv -> 3x3 conv, plus the (possibly projected) input."""
    y = conv_bn(b, x, ("conv1", "bn1"), in_c, width, 3, stride, True)
    y = conv_bn(b, y, ("conv2", "bn2"), width, width, 3, 1, False, RESIDUAL_GAMMA)
    return _join(b, y, _shortcut(b, x, in_c, width, stride))


def bottleneck_block(b: GraphBuilder, x: str, in_c: int, width: int, stride: int) -> str:
    """1x1 reduce -> 3x3 (strided) -> 1x1 expand x4, plus the (projected) input."""
    out_c = width * EXPANSION["bottleneck"]
    y = conv_bn(b, x, ("conv1", "bn1"), in_c, width, 1, 1, True)
    y = conv_bn(b, y, ("conv2", "bn2"), width, width, 3, stride, True)
    y = conv_bn(b, y, ("conv3", "bn3"), width, out_c, 1, 1, False, RESIDUAL_GAMMA)
    return _join(b, y, _shortcut(b, x, in_c, out_c, stride))


def _stem(b: GraphBuilder, x: str, cfg: ResNetConfig) -> str:
    y = conv_bn(b, x, ("conv1", "bn1"), 3, cfg.stem, 7, 2, True)
    with b.scope("maxpool"):
        return b.op("MaxPool", y, kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])


def _stages(b: GraphBuilder, x: str, cfg: ResNetConfig) -> tuple[str, int]:
    block = basic_block if cfg.block == "basic" else bottleneck_block
    channels = cfg.stem
    for stage, (count, width) in enumerate(zip(cfg.layers, cfg.widths, strict=True)):
        for i in range(count):
            stride = 2 if stage > 0 and i == 0 else 1
            with b.scope(f"layer{stage + 1}.{i}"):
                x = block(b, x, channels, width, stride)
            channels = width * EXPANSION[cfg.block]
    return x, channels


def build(cfg: ResNetConfig, seed: int) -> onnx.ModelProto:
    """Build a ResNet graph for ``cfg``; output ``logits`` [batch, classes]."""
    b = GraphBuilder(f"resnet_{cfg.block}", seed)
    x = b.add_input("pixel_values", TensorProto.FLOAT, ["batch", 3, cfg.image, cfg.image])
    x, channels = _stages(b, _stem(b, x, cfg), cfg)
    with b.scope("avgpool"):
        x = b.op("GlobalAveragePool", x)
    with b.scope("flatten"):
        x = b.op("Flatten", x, axis=1)
    x = gemm(b, x, "fc", channels, cfg.classes)
    b.add_output(x, "logits", ["batch", cfg.classes])
    return b.to_model(f"ResNet ({cfg.block} blocks {cfg.layers}) on {cfg.image}x{cfg.image}")
