"""The model zoo: real-architecture ONNX models (MLP, ResNet, BERT, GPT-2, ViT) built in code.

Graphs follow what torch.onnx / Hugging Face exports look like (opset 17), with seeded
random weights scaled so float32 activations stay O(1). See docs/models.md.

    >>> from relaxvm.models import build_model, example_inputs
    >>> model = build_model("bert", "tiny", seed=0)
    >>> feeds = example_inputs(model)          # input_ids, attention_mask, token_type_ids
"""

from relaxvm.models.inspection import count_params, example_inputs, model_ops
from relaxvm.models.zoo import ZOO, ModelSpec, build_model, get_spec, list_models

__all__ = ["ZOO", "ModelSpec", "build_model", "count_params", "example_inputs", "get_spec",
           "list_models", "model_ops"]
