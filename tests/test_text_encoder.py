"""The MiniLM text encoder (torch functions over the packaged weights) against transformers' BertModel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from media_factory import prose

from dataflux_pipelines.models.loading import ModelProfile, cpu_has_native_bf16, reduced_precision
from dataflux_pipelines.models.registry import ModelRegistry
from dataflux_pipelines.models.text import TEXT_MAX_LENGTH, TextEncoder, _bert_config, text_model_dir
from dataflux_pipelines.settings import Settings

TEXTS = [
    "a red car on a wet street",
    "",
    "Café déjà vu — naïve résumé",
    "日本語のテキスト 中文",
    "word " * 600,  # longer than the model reads: cut at TEXT_MAX_LENGTH tokens
    "Hello, WORLD!!  tabs\tand\nnewlines",
    *[prose(20 + 40 * i, seed=i) for i in range(6)],
]


@pytest.fixture(scope="module")
def encoders() -> tuple[TextEncoder, object, object]:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    folder = str(text_model_dir())
    encoder = TextEncoder(ModelProfile("text", folder, None, "cpu", 4, "float32"))
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    model = transformers.AutoModel.from_pretrained(folder, dtype=torch.float32).eval()
    return encoder, tokenizer, model


def _reference(tokenizer: object, model: object, texts: list[str]) -> np.ndarray:
    """Mean-pooled, L2-normalised last hidden state of transformers' BertModel (the earlier encoder)."""
    import torch

    tokens = tokenizer(texts, padding=True, truncation=True, max_length=TEXT_MAX_LENGTH, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**tokens).last_hidden_state
    mask = tokens["attention_mask"].unsqueeze(-1).float()
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, p=2, dim=1).numpy()


def test_tokens_match_transformers(encoders: tuple) -> None:
    encoder, tokenizer, _ = encoders
    ours = encoder.tokenizer.encode_batch(TEXTS)
    theirs = tokenizer(TEXTS, padding=True, truncation=True, max_length=TEXT_MAX_LENGTH)
    assert [e.ids for e in ours] == theirs["input_ids"]
    assert [e.attention_mask for e in ours] == theirs["attention_mask"]
    assert max(sum(e.attention_mask) for e in ours) == TEXT_MAX_LENGTH


def test_vectors_match_transformers(encoders: tuple) -> None:
    encoder, tokenizer, model = encoders
    ours = encoder.embed_texts(TEXTS)  # batches of 4: padding inside a batch, as in a run
    assert ours.shape == (len(TEXTS), encoder.dim) and ours.dtype == np.float32
    for start in range(0, len(TEXTS), 4):
        theirs = _reference(tokenizer, model, TEXTS[start : start + 4])
        np.testing.assert_allclose(ours[start : start + 4], theirs, atol=1e-6, rtol=0)
    # One text alone (no padding, no mask) gives the vector it gets inside a padded batch.
    np.testing.assert_allclose(encoder.embed_texts([TEXTS[0]])[0], ours[0], atol=1e-6, rtol=0)
    assert encoder.embed_texts([]).shape == (0, encoder.dim)
    # Batches are formed by length, not by position: every vector still comes back at its text's place.
    np.testing.assert_allclose(encoder.embed_texts(TEXTS[::-1])[::-1], ours, atol=1e-6, rtol=0)


def test_refuses_configs_it_does_not_implement() -> None:
    base = {"num_hidden_layers": 1, "num_attention_heads": 2, "hidden_size": 4}
    assert _bert_config(base)["eps"] == 1e-12
    with pytest.raises(ValueError, match="hidden_act"):
        _bert_config({**base, "hidden_act": "relu"})
    with pytest.raises(ValueError, match="position_embedding_type"):
        _bert_config({**base, "position_embedding_type": "relative_key"})


@pytest.mark.skipif(not cpu_has_native_bf16(), reason="this CPU has no native bfloat16")
def test_bfloat16_vectors_stand_for_the_same_texts_as_float32(encoders: tuple, tmp_path: Path) -> None:
    """The registry's CPU precision where the CPU multiplies bfloat16 natively: the same vectors to a
    cosine of 0.9995, so a library embedded in float32 is searched with bfloat16 queries."""
    encoder, _, _ = encoders
    profile = ModelRegistry(
        Settings.from_env({"DATAFLUX_HOME": str(tmp_path), "DATAFLUX_DEVICE": "cpu"})
    ).profiles["text"]
    assert profile.dtype == "bfloat16" and reduced_precision("cuda:0") == "float16"
    half = TextEncoder(profile)
    texts = [t for t in TEXTS if t] + [prose(60, seed=100 + i) for i in range(20)]
    ours, theirs = half.embed_texts(texts), encoder.embed_texts(texts)
    assert ours.dtype == np.float32
    cosines = (ours * theirs).sum(1)
    assert cosines.min() > 0.9995, cosines.min()
    assert half.version == encoder.version  # no re-embedding: the vectors are interchangeable
    # Every pair's similarity, what ranking compares, moves by far less than the gaps search acts on.
    assert np.abs(ours @ ours.T - theirs @ theirs.T).max() < 0.005


def test_the_cpu_precision_is_float32_without_native_bfloat16(monkeypatch: pytest.MonkeyPatch) -> None:
    from dataflux_pipelines.models import loading

    monkeypatch.setattr(loading, "cpu_has_native_bf16", lambda: False)
    assert loading.reduced_precision("cpu") == "float32" and loading.reduced_precision("mps") == "float32"
