"""The optional OpenCLIP backend: image, region-crop and *text* embeddings in one space, so that a query like
"scratch near the neck" finds stored defects. ``pip install 'linewatch[clip]'`` and a weights file you provide
(nothing is downloaded):

    clip = ClipEmbedder("ViT-B-32", weights="/models/open_clip_vit_b_32.bin")
    index.add(ids, clip.embed_regions(image, boxes), payloads)     # crops of the detector's regions
    hits = index.query(clip.embed_text(["scratch near the neck"])[0], k=5)

It is chosen explicitly and never stands in for the default backbone: a missing package, model name or weights
file is an error that says what to install or where the file should be. Unlike the default embeddings (pooled
from the scoring pass for free), CLIP runs its own forward pass per image and per region crop, so indexes of
CLIP vectors are separate indexes of CLIP's dimension.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from linewatch.errors import LinewatchError

CROP_MARGIN = 0.25  # a region crop is its box grown by this share of its size on each side (context for CLIP)
MIN_CROP = 32  # pixels: tiny regions are cropped at least this large


class ClipUnavailable(LinewatchError):
    """OpenCLIP is not installed, or its model or weights cannot be loaded."""


def _open_clip():
    try:
        import open_clip
    except ImportError:
        raise ClipUnavailable(
            "the OpenCLIP backend needs open-clip-torch: pip install 'linewatch[clip]' (the default backbone "
            "needs nothing more; it is not used in CLIP's place)"
        ) from None
    return open_clip


class ClipEmbedder:
    """OpenCLIP ``model_name`` with the weights in ``weights`` (a local .bin/.pt/.safetensors checkpoint)."""

    def __init__(self, model_name: str, weights: str | Path, device: str = "cpu", batch_size: int = 16):
        open_clip = _open_clip()
        import torch

        self.torch = torch
        if model_name not in open_clip.list_models():
            raise ClipUnavailable(
                f"OpenCLIP has no model {model_name!r}; e.g. {', '.join(open_clip.list_models()[:5])}"
            )
        path = Path(weights) if weights else None
        if path is None or not path.is_file():
            raise ClipUnavailable(
                f"OpenCLIP weights for {model_name} not found at {weights}: download the checkpoint where you are "
                "online and give its path (linewatch never downloads it)"
            )
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(
                model_name, pretrained=str(path), device=device
            )
            self.tokenizer = open_clip.get_tokenizer(model_name)
        except Exception as e:  # a checkpoint of another architecture, a corrupt file, ...
            why = " ".join(str(e).split())[:200]
            raise ClipUnavailable(f"cannot load OpenCLIP {model_name} from {path}: {why}") from None
        self.model = model.eval()
        self.preprocess = preprocess
        self.device = device
        self.batch_size = int(batch_size)
        self.model_name = model_name
        with torch.inference_mode():
            self.dim = int(self.model.encode_text(self.tokenizer(["x"]).to(device)).shape[-1])

    def _encode_images(self, pil_images: Sequence) -> np.ndarray:
        torch = self.torch
        out = []
        with torch.inference_mode():
            for s in range(0, len(pil_images), self.batch_size):
                batch = torch.stack([self.preprocess(im) for im in pil_images[s : s + self.batch_size]])
                out.append(self.model.encode_image(batch.to(self.device)).float().cpu().numpy())
        v = np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)
        return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)

    def embed_images(self, images: Sequence) -> np.ndarray:
        """(N, dim) unit vectors of whole images (paths or PIL images)."""
        from linewatch.vision.images import open_image

        return self._encode_images([open_image(im) if not hasattr(im, "crop") else im for im in images])

    def embed_regions(self, image, boxes: Sequence[Sequence[int]]) -> np.ndarray:
        """(len(boxes), dim) unit vectors of crops of ``image`` around each (x0, y0, x1, y1) box."""
        from linewatch.vision.images import open_image

        img = image if hasattr(image, "crop") else open_image(image)
        crops = []
        for x0, y0, x1, y1 in boxes:
            w, h = x1 - x0, y1 - y0
            mx = max(CROP_MARGIN * w, (MIN_CROP - w) / 2, 0)
            my = max(CROP_MARGIN * h, (MIN_CROP - h) / 2, 0)
            box = (max(0, x0 - mx), max(0, y0 - my), min(img.width, x1 + mx), min(img.height, y1 + my))
            crops.append(img.crop(tuple(int(round(b)) for b in box)))
        return self._encode_images(crops)

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        """(N, dim) unit vectors of text queries, in the images' space."""
        torch = self.torch
        with torch.inference_mode():
            v = self.model.encode_text(self.tokenizer(list(texts)).to(self.device)).float().cpu().numpy()
        return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
