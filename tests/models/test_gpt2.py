"""GPT-2 prefill and decode against NumPy float64, KV-cache consistency, causality."""

from __future__ import annotations

import numpy as np
import pytest
from zoo_numpy import Weights, gelu_tanh, heads, softmax, unheads
from zoo_oracle import assert_agree, initializers, run_ort, run_reference

from relaxvm.models import ZOO, build_model, count_params, example_inputs, model_ops

CFG = ZOO["gpt2"].config("tiny")
EPS = 1e-5


def _attn(w: Weights, x: np.ndarray, pre: str, past: tuple | None):
    q, k, v = (heads(t, CFG.heads) for t in np.split(w.linear(x, pre + "c_attn"), 3, -1))
    if past is not None:
        k, v = np.concatenate([past[0], k], 2), np.concatenate([past[1], v], 2)
    start, total = k.shape[2] - q.shape[2], k.shape[2]
    causal = np.tril(np.ones((total, total), dtype=bool))[start:]
    scores = np.where(causal, q @ k.swapaxes(-1, -2) / np.sqrt(q.shape[-1]), -np.inf)
    return w.linear(unheads(softmax(scores) @ v), pre + "c_proj"), (k, v)


def gpt2_reference(w: Weights, ids: np.ndarray, past: list | None = None):
    """Logits and per-layer (key, value) for ``ids`` after ``past`` cached positions."""
    start = 0 if past is None else past[0][0].shape[2]
    x = w("transformer.wte.weight")[ids] + w("transformer.wpe.weight")[start:start + ids.shape[1]]
    present = []
    for i in range(CFG.layers):
        pre = f"transformer.h.{i}."
        out, kv = _attn(w, w.layer_norm(x, pre + "ln_1", EPS), pre + "attn.",
                        None if past is None else past[i])
        x, _ = x + out, present.append(kv)
        h = gelu_tanh(w.linear(w.layer_norm(x, pre + "ln_2", EPS), pre + "mlp.c_fc"))
        x = x + w.linear(h, pre + "mlp.c_proj")
    x = w.layer_norm(x, "transformer.ln_f", EPS)
    return x @ w("transformer.wte.weight").T, present


@pytest.fixture(scope="module")
def prefill():
    return build_model("gpt2", "tiny", seed=5)


@pytest.fixture(scope="module")
def decode():
    return build_model("gpt2_decode", "tiny", seed=5)


def _tokens(batch=2, length=CFG.sequence + 1):
    return np.random.default_rng(9).integers(0, CFG.vocab, (batch, length), dtype=np.int64)


def _past_feeds(out: dict) -> dict:
    return {f"past_{kind}_{i}": out[f"present_{kind}_{i}"]
            for i in range(CFG.layers) for kind in ("key", "value")}


def test_prefill_matches_numpy_decoder(prefill):
    ids = _tokens()[:, :CFG.sequence]
    logits, present = gpt2_reference(Weights(initializers(prefill)), ids)
    for run in (run_ort, run_reference):
        out = run(prefill, {"input_ids": ids})
        assert_agree(out["logits"], logits)
        for i, (k, v) in enumerate(present):
            assert_agree(out[f"present_key_{i}"], k)
            assert_agree(out[f"present_value_{i}"], v)


def test_decode_matches_numpy_decoder_with_random_past(decode):
    feeds = example_inputs(decode, seed=6, batch=2)
    past = [(feeds[f"past_key_{i}"].astype(np.float64), feeds[f"past_value_{i}"])
            for i in range(CFG.layers)]
    logits, present = gpt2_reference(Weights(initializers(decode)), feeds["input_ids"], past)
    out = run_ort(decode, feeds)
    assert_agree(out["logits"], logits)
    assert_agree(out["present_key_1"], present[1][0])
    assert out["present_value_0"].shape == (2, CFG.heads, CFG.past + 1, CFG.head_dim)


@pytest.mark.parametrize("run", [run_ort, run_reference])
def test_decode_step_after_prefill_equals_longer_prefill(prefill, decode, run):
    ids, s = _tokens(), CFG.past
    first = run(prefill, {"input_ids": ids[:, :s]})
    step = run(decode, {"input_ids": ids[:, s:s + 1], **_past_feeds(first)})
    full = run(prefill, {"input_ids": ids[:, :s + 1]})
    assert_agree(step["logits"][:, 0], full["logits"][:, -1])
    for name in _past_feeds(first):
        present = name.replace("past", "present")
        assert_agree(step[present], full[present])


def test_chained_decode_steps_reproduce_every_prefill_position(prefill, decode):
    ids = _tokens(length=CFG.n_ctx)
    out = run_ort(prefill, {"input_ids": ids[:, :3]})
    full = run_ort(prefill, {"input_ids": ids})["logits"]
    for pos in range(3, CFG.n_ctx):
        out = run_ort(decode, {"input_ids": ids[:, pos:pos + 1], **_past_feeds(out)})
        assert_agree(out["logits"][:, 0], full[:, pos])


def test_later_tokens_do_not_change_earlier_logits(prefill):
    ids = _tokens()[:, :CFG.sequence]
    changed = ids.copy()
    changed[:, 5] = (changed[:, 5] + 1) % CFG.vocab
    before = run_ort(prefill, {"input_ids": ids})["logits"]
    after = run_ort(prefill, {"input_ids": changed})["logits"]
    assert_agree(after[:, :5], before[:, :5])
    assert (np.abs(after[:, 5:] - before[:, 5:]).max(axis=-1) > 1e-4).all()


def test_prefill_and_decode_hold_identical_weights(prefill, decode):
    a, b = initializers(prefill), initializers(decode)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_lm_head_is_tied_to_token_embedding(prefill):
    vocab_sized = [i.name for i in prefill.graph.initializer if CFG.vocab in i.dims]
    assert vocab_sized == ["transformer.wte.weight"]
    transposes = [n for n in prefill.graph.node if n.input[:1] == ["transformer.wte.weight"]
                  and n.op_type == "Transpose"]
    assert len(transposes) == 1


def test_gpt2_uses_causal_where_and_tanh_gelu(prefill, decode):
    assert {"Where", "Pow", "Tanh", "Split", "Range", "Slice", "Softmax"} <= \
        set(model_ops(prefill))
    assert "Concat" in model_ops(decode) and "Concat" not in model_ops(prefill)


@pytest.mark.slow
def test_small_size_has_gpt2_small_layout_and_parameter_count():
    model = build_model("gpt2_decode", "small")
    assert count_params(model) == pytest.approx(124_000_000, rel=0.05)
    names = [i.name for i in model.graph.input]
    assert names[0] == "input_ids" and names[-1] == "past_value_11" and len(names) == 25
    feeds = example_inputs(model)
    assert feeds["past_key_0"].shape == (1, 12, 127, 64)
