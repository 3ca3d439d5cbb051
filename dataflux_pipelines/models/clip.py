"""CLIP: the image tower (keyframes, images) and the text tower (queries, concept labels) in one space."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dataflux_pipelines.models.loading import (
    ImageInput,
    ModelProfile,
    batches,
    check_obtainable,
    from_pretrained,
    model_version,
    space_name,
    to_pil,
)


class ClipEncoder:
    """CLIP's image tower (keyframes, images) and text tower (queries, concept labels)."""

    def __init__(self, profile: ModelProfile) -> None:
        check_obtainable(profile.model_id_or_path, profile.revision)  # before seconds of imports
        import torch
        from transformers import AutoTokenizer, CLIPImageProcessorPil, CLIPModel

        self.profile = profile
        self._torch = torch
        self._dtype = getattr(torch, profile.dtype)
        ident, rev = profile.model_id_or_path, profile.revision
        self.model = from_pretrained(CLIPModel, ident, rev, dtype=self._dtype).to(profile.device).eval()
        # CLIPImageProcessor needs torchvision (absent); the PIL processor gives the same pixels.
        self.image_processor = from_pretrained(CLIPImageProcessorPil, ident, rev)
        self.tokenizer = from_pretrained(AutoTokenizer, ident, rev)
        self.dim = int(self.model.config.projection_dim)
        self.logit_scale = float(self.model.logit_scale.detach().float().exp().cpu())
        self.space = space_name(ident)
        self.version = model_version(ident, rev)

    def embed_images(self, images: Sequence[ImageInput]) -> np.ndarray:
        torch = self._torch
        out = [np.zeros((0, self.dim), dtype=np.float32)]
        with torch.inference_mode():
            for batch in batches(list(images), self.profile.batch_size):
                pixels = self.image_processor(images=[to_pil(i) for i in batch], return_tensors="pt")
                values = pixels["pixel_values"].to(self.profile.device, dtype=self._dtype)
                # transformers 5: a BaseModelOutputWithPooling, the projected embedding is pooler_output
                emb = self.model.get_image_features(pixel_values=values).pooler_output
                out.append(torch.nn.functional.normalize(emb.float(), dim=-1).cpu().numpy())
        return np.concatenate(out).astype(np.float32)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        torch = self._torch
        out = [np.zeros((0, self.dim), dtype=np.float32)]
        max_length = getattr(self.model.config.text_config, "max_position_embeddings", 77)
        with torch.inference_mode():
            for batch in batches(list(texts), self.profile.batch_size):
                tokens = self.tokenizer(
                    list(batch), padding=True, truncation=True, max_length=max_length, return_tensors="pt"
                ).to(self.profile.device)
                emb = self.model.get_text_features(
                    input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]
                ).pooler_output
                out.append(torch.nn.functional.normalize(emb.float(), dim=-1).cpu().numpy())
        return np.concatenate(out).astype(np.float32)
