"""The optional OpenCLIP backend: explicit, never a fallback; real embeddings when the package and weights are here."""

import os
from pathlib import Path

import numpy as np
import pytest

from linewatch.search.clip import ClipEmbedder, ClipUnavailable

WEIGHTS = os.environ.get("LINEWATCH_CLIP_WEIGHTS")  # a real checkpoint, e.g. ViT-B-32 (never downloaded here)
MODEL = os.environ.get("LINEWATCH_CLIP_MODEL", "ViT-B-32")


def test_missing_package_or_weights_is_an_error_not_a_fallback(tmp_path):
    with pytest.raises(ClipUnavailable, match="open-clip-torch|weights for ViT-B-32 not found"):
        ClipEmbedder("ViT-B-32", tmp_path / "absent.bin")


def test_unknown_model_or_unreadable_weights(tmp_path):
    pytest.importorskip("open_clip", reason="open-clip-torch is not installed (pip install 'linewatch[clip]')")
    with pytest.raises(ClipUnavailable, match="no model"):
        ClipEmbedder("no-such-model", tmp_path / "x.bin")
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ClipUnavailable, match="cannot load"):
        ClipEmbedder("ViT-S-32", bad)


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory):
    """A ViT-S-32 checkpoint with random weights made here: exercises the loading and embedding code paths without
    downloading anything (the vectors mean nothing)."""
    open_clip = pytest.importorskip("open_clip", reason="open-clip-torch is not installed")
    import torch

    torch.manual_seed(0)
    model = open_clip.create_model("ViT-S-32", pretrained=None)
    path = tmp_path_factory.mktemp("clip") / "vit-s-32-random.pt"
    torch.save(model.state_dict(), path)
    return path


def test_image_region_and_text_embeddings_share_one_space(small_checkpoint, synthetic):
    clip = ClipEmbedder("ViT-S-32", small_checkpoint)
    images = sorted((synthetic / "test" / "spot").iterdir())[:2]
    v = clip.embed_images(images)
    assert v.shape == (2, clip.dim) and np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
    r = clip.embed_regions(images[0], [(10, 10, 20, 20), (0, 0, 256, 256)])
    assert r.shape == (2, clip.dim)
    t = clip.embed_text(["scratch near the neck", "dark spot"])
    assert t.shape == (2, clip.dim) and not np.allclose(t[0], t[1])


@pytest.mark.skipif(
    not WEIGHTS,
    reason="no OpenCLIP weights: set LINEWATCH_CLIP_WEIGHTS=/path/to/checkpoint "
    "(and LINEWATCH_CLIP_MODEL, default ViT-B-32) to run the semantic check",
)
def test_text_queries_find_matching_images(synthetic):
    """With real weights: a text naming what is in the picture is nearer to it than an unrelated one."""
    clip = ClipEmbedder(MODEL, Path(WEIGHTS))
    img = clip.embed_images([sorted((synthetic / "train" / "good").iterdir())[0]])[0]
    t = clip.embed_text(["a photo of a metal washer", "a photo of a dog in a park"])
    assert img @ t[0] > img @ t[1]
