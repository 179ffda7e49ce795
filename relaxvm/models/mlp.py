"""A multilayer perceptron: ``Gemm(transB=1)`` + ``Relu`` layers, logits out.

The "mnist" size is the classic 784-512-256-10 classifier (535,818 parameters); "tiny" is
32-16-8-4 for fast tests. Input ``input`` is float32 [batch, in_features].
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx
from onnx import TensorProto

from relaxvm.models.graph_builder import GraphBuilder
from relaxvm.models.layers import gemm


@dataclass(frozen=True)
class MLPConfig:
    """Layer widths from input features to classes."""

    widths: tuple[int, ...]


SIZES = {
    "tiny": MLPConfig((32, 16, 8, 4)),
    "mnist": MLPConfig((784, 512, 256, 10)),
}


def build(cfg: MLPConfig, seed: int) -> onnx.ModelProto:
    """Build the MLP graph; hidden layers use He init so ReLU activations stay O(1)."""
    b = GraphBuilder("mlp", seed)
    x = b.add_input("input", TensorProto.FLOAT, ["batch", cfg.widths[0]])
    layers = list(zip(cfg.widths[:-1], cfg.widths[1:], strict=True))
    for i, (in_f, out_f) in enumerate(layers):
        last = i == len(layers) - 1
        x = gemm(b, x, f"fc{i + 1}", in_f, out_f, gain=1.0 if last else 2.0)
        if not last:
            with b.scope(f"relu{i + 1}"):
                x = b.op("Relu", x)
    b.add_output(x, "logits", ["batch", cfg.widths[-1]])
    return b.to_model(f"MLP {'-'.join(map(str, cfg.widths))} with ReLU")
