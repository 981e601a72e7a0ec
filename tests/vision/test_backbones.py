import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from linewatch.vision.backbones import WeightsError, create_backbone, load_checked, offline_weights_path
from linewatch.vision.images import IMAGENET_MEAN, IMAGENET_STD


def _classify(model, image: np.ndarray) -> list[int]:
    img = Image.fromarray(image).convert("RGB").resize((224, 224), Image.BICUBIC)
    x = (np.asarray(img, dtype=np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    with torch.inference_mode():
        logits = model(torch.from_numpy(x.transpose(2, 0, 1).copy())[None])
    return logits[0].topk(5).indices.tolist()


def test_default_weights_are_imagenet_pretrained():
    model = create_backbone("efficientnet_lite0")
    # ImageNet classes: 281-285 are domestic cats, 967 is espresso
    assert _classify(model, data.chelsea())[0] in range(281, 286)
    assert _classify(model, data.coffee())[0] == 967


def test_random_network_would_not_pass_the_same_check():
    import timm

    model = timm.create_model("efficientnet_lite0", pretrained=False).eval()
    assert _classify(model, data.coffee())[0] != 967 or _classify(model, data.chelsea())[0] not in range(281, 286)


def test_mismatched_checkpoint_fails_loudly(tmp_path):
    import timm

    sd = torch.load(offline_weights_path("efficientnet_lite0"), map_location="cpu", weights_only=True)
    model = timm.create_model("efficientnet_lite1", pretrained=False)
    with pytest.raises(WeightsError, match="do not fit"):
        load_checked(model, sd, "lite0 file")
    partial = dict(list(sd.items())[:-4])
    path = tmp_path / "partial.pth"
    torch.save(partial, path)
    with pytest.raises(WeightsError, match="missing"):
        create_backbone("efficientnet_lite0", weights=path)


def test_unreadable_or_unknown_weights(tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="cannot read"):
        create_backbone("efficientnet_lite0", weights=bad)
    with pytest.raises(WeightsError, match="not found"):
        create_backbone("efficientnet_lite0", weights=tmp_path / "nope.pth")
    with pytest.raises(WeightsError, match="no offline weights"):
        create_backbone("resnet18")
    with pytest.raises(WeightsError, match="unknown backbone"):
        create_backbone("no_such_net")
