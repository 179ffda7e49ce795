"""The model registry: which architectures exist, their sizes, and how to build one.

Each entry maps a model name to a ModelSpec holding its size table (size name -> config
dataclass) and the function that turns a config and a seed into an ``onnx.ModelProto``.
Every model has a "tiny" size for tests and one real size named after what it is
(``mnist``, ``imagenet``, ``base``, ``small``, ``ti16``); ``ModelSpec.full_size`` names it.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import onnx

from relaxvm.errors import ArgumentError
from relaxvm.models import bert, gpt2, mlp, resnet, vit


@dataclass(frozen=True)
class ModelSpec:
    """One zoo entry: a name, a one-line summary, sizes and the graph builder."""

    name: str
    summary: str
    sizes: Mapping[str, Any]
    builder: Callable[[Any, int], onnx.ModelProto]

    @property
    def size_names(self) -> tuple[str, ...]:
        """Size names, "tiny" first."""
        return tuple(self.sizes)

    @property
    def full_size(self) -> str:
        """The real-world size (the last one), e.g. "imagenet" for ResNet-18."""
        return self.size_names[-1]

    def config(self, size: str) -> Any:
        """The config dataclass of ``size``; ArgumentError names the valid sizes."""
        if size not in self.sizes:
            raise ArgumentError(f"build_model: size for {self.name!r} must be one of "
                                f"{list(self.sizes)}, got {size!r}")
        return self.sizes[size]

    def build(self, size: str = "tiny", seed: int = 0) -> onnx.ModelProto:
        """Build the model at ``size`` with weights from ``seed``; metadata records both."""
        model = self.builder(self.config(size), _check_seed(seed))
        for key, value in (("model", self.name), ("size", size), ("seed", str(seed))):
            model.metadata_props.add(key=f"relaxvm.{key}", value=value)
        return model


ZOO: dict[str, ModelSpec] = {spec.name: spec for spec in (
    ModelSpec("mlp", "MLP classifier, Gemm + Relu", mlp.SIZES, mlp.build),
    ModelSpec("resnet18", "ResNet-18, basic blocks, Conv + BatchNorm + Relu",
              resnet.RESNET18_SIZES, resnet.build),
    ModelSpec("resnet50", "ResNet-50, bottleneck blocks, Conv + BatchNorm + Relu",
              resnet.RESNET50_SIZES, resnet.build),
    ModelSpec("bert", "BERT encoder, post-LN, GELU (Erf), padding mask",
              bert.SIZES, bert.build),
    ModelSpec("gpt2", "GPT-2 prefill: logits and present key/values",
              gpt2.SIZES, gpt2.build),
    ModelSpec("gpt2_decode", "GPT-2 one-token decode step with KV cache (Concat past)",
              gpt2.SIZES, gpt2.build_decode),
    ModelSpec("vit", "Vision Transformer, pre-LN, patch Conv + class token",
              vit.SIZES, vit.build),
)}


def _check_seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ArgumentError(f"build_model: seed must be a non-negative int, got {seed!r}")
    return seed


def get_spec(name: str) -> ModelSpec:
    """The ModelSpec of ``name``; ArgumentError lists the zoo and suggests a close name."""
    spec = ZOO.get(name) if isinstance(name, str) else None
    if spec is None:
        close = difflib.get_close_matches(str(name), list(ZOO), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ArgumentError(f"build_model: name must be one of {sorted(ZOO)}, "
                            f"got {name!r}{hint}")
    return spec


def build_model(name: str, size: str = "tiny", seed: int = 0) -> onnx.ModelProto:
    """Build zoo model ``name`` at ``size`` with seeded weights (same seed, same model)."""
    return get_spec(name).build(size, seed)


def list_models() -> list[tuple[str, tuple[str, ...]]]:
    """Every model name with its size names, in zoo order."""
    return [(name, spec.size_names) for name, spec in ZOO.items()]
