"""BERT against a NumPy float64 encoder, padding-mask behaviour, and the base layout."""

from __future__ import annotations

import numpy as np
import pytest
from zoo_numpy import Weights, attend, gelu_erf, heads, unheads
from zoo_oracle import assert_agree, initializers, run_ort, run_reference

from relaxvm.models import ZOO, build_model, count_params, example_inputs, model_ops

EPS = 1e-12


def _layer(w: Weights, x: np.ndarray, pre: str, n_heads: int, bias: np.ndarray):
    q, k, v = (heads(w.linear(x, f"{pre}attention.self.{n}"), n_heads)
               for n in ("query", "key", "value"))
    ctx = unheads(attend(q, k, v, bias))
    x = w.layer_norm(w.linear(ctx, pre + "attention.output.dense") + x,
                     pre + "attention.output.LayerNorm", EPS)
    h = gelu_erf(w.linear(x, pre + "intermediate.dense"))
    return w.layer_norm(w.linear(h, pre + "output.dense") + x, pre + "output.LayerNorm", EPS)


def bert_reference(w: Weights, feeds: dict, layers: int, n_heads: int):
    ids, mask, types = feeds["input_ids"], feeds["attention_mask"], feeds["token_type_ids"]
    x = (w("embeddings.word_embeddings.weight")[ids]
         + w("embeddings.token_type_embeddings.weight")[types]
         + w("embeddings.position_embeddings.weight")[:ids.shape[1]])
    x = w.layer_norm(x, "embeddings.LayerNorm", EPS)
    bias = (1.0 - mask[:, None, None, :]) * -10000.0
    for i in range(layers):
        x = _layer(w, x, f"encoder.layer.{i}.", n_heads, bias)
    return x, np.tanh(w.dense(x[:, 0], "pooler.dense"))


@pytest.fixture(scope="module")
def tiny():
    return build_model("bert", "tiny", seed=4)


def _padded_feeds(model, pad_from: int):
    feeds = example_inputs(model, seed=4, batch=2)
    feeds["attention_mask"][1, pad_from:] = 0
    feeds["token_type_ids"][:, 4:] = 1
    return feeds


def test_bert_matches_numpy_encoder_with_padding(tiny):
    feeds = _padded_feeds(tiny, pad_from=5)
    cfg = ZOO["bert"].config("tiny")
    hidden, pooled = bert_reference(Weights(initializers(tiny)), feeds, cfg.layers, cfg.heads)
    for run in (run_ort, run_reference):
        out = run(tiny, feeds)
        assert_agree(out["last_hidden_state"], hidden)
        assert_agree(out["pooler_output"], pooled)


def test_padded_tokens_do_not_change_unpadded_outputs(tiny):
    feeds = _padded_feeds(tiny, pad_from=5)
    changed = {k: v.copy() for k, v in feeds.items()}
    changed["input_ids"][1, 5:] = (changed["input_ids"][1, 5:] + 7) % 100
    before, after = run_ort(tiny, feeds), run_ort(tiny, changed)
    assert_agree(after["last_hidden_state"][1, :5], before["last_hidden_state"][1, :5])
    assert_agree(after["pooler_output"], before["pooler_output"])


def test_unpadded_tokens_change_every_position(tiny):
    feeds = example_inputs(tiny, seed=4)
    changed = {k: v.copy() for k, v in feeds.items()}
    changed["input_ids"][0, -1] = (changed["input_ids"][0, -1] + 7) % 100
    before, after = run_ort(tiny, feeds), run_ort(tiny, changed)
    diff = np.abs(after["last_hidden_state"] - before["last_hidden_state"]).max(axis=-1)
    assert (diff > 1e-4).all()


def test_shorter_sequence_runs_with_the_same_graph(tiny):
    feeds = {k: v[:, :5] for k, v in example_inputs(tiny, seed=4).items()}
    cfg = ZOO["bert"].config("tiny")
    hidden, _ = bert_reference(Weights(initializers(tiny)), feeds, cfg.layers, cfg.heads)
    assert_agree(run_ort(tiny, feeds)["last_hidden_state"], hidden)


def test_bert_uses_exporter_attention_and_erf_gelu(tiny):
    assert {"Gather", "LayerNormalization", "MatMul", "Add", "Reshape", "Transpose", "Div",
            "Softmax", "Erf", "Mul", "Cast", "Unsqueeze"} <= set(model_ops(tiny))


@pytest.mark.slow
def test_base_size_has_bert_base_layout_and_parameter_count():
    model = build_model("bert", "base")
    assert count_params(model) == pytest.approx(110_000_000, rel=0.05)
    assert [n.op_type for n in model.graph.node].count("Softmax") == 12
    weights = {i.name: tuple(i.dims) for i in model.graph.initializer}
    assert weights["embeddings.word_embeddings.weight"] == (30522, 768)
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["relaxvm.dim.sequence"] == "128"
