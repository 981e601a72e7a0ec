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
    import fractions

    pickled = tmp_path / "pickled.pth"  # a pickle of other things: torch's refusal runs to many lines
    torch.save({"x": fractions.Fraction(1, 2)}, pickled)
    with pytest.raises(WeightsError, match="not a checkpoint") as e:
        create_backbone("efficientnet_lite0", weights=pickled)
    assert "\n" not in str(e.value) and len(str(e.value)) < 400, str(e.value)
    with pytest.raises(WeightsError, match="no offline weights"):
        create_backbone("resnet18")
    with pytest.raises(WeightsError, match="unknown backbone"):
        create_backbone("no_such_net")


def test_the_extractor_folds_its_batch_norms_for_inference_and_keeps_its_own_weights():
    from linewatch.vision.backbones import build_extractor

    ext = build_extractor("efficientnet_lite0", None, (4, 8, 16)).eval()
    keys = set(ext.state_dict())
    x = torch.randn(2, 3, 64, 96)
    with torch.inference_mode():
        plain = [ext.body(x)[layer] for layer in ext.layers]
        fast = ext(x)
        folded = ext._inference_body()
    for a, b in zip(plain, fast, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4 * float(a.abs().max()))
    # scoring (and fitting) runs in channels-last memory: faster depthwise convolutions
    assert all(f.is_contiguous(memory_format=torch.channels_last) for f in fast)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())  # every one folded
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in ext.modules())  # the saved body keeps them
    assert set(ext.state_dict()) == keys  # the folded copy is not part of what is saved

    # the body's memory format or weights change (training converts it to channels_last): folded again from them
    ext.to(memory_format=torch.channels_last)
    with torch.inference_mode():
        again = ext(x.contiguous(memory_format=torch.channels_last))
        assert ext._inference_body() is not folded
    for a, b in zip(plain, again, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4 * float(a.abs().max()))
    ext.to(memory_format=torch.contiguous_format)
    state = {k: v.clone() for k, v in ext.state_dict().items()}
    state[next(k for k in state if k.endswith("bn1.running_mean"))] += 1.0
    ext.load_state_dict(state)
    with torch.inference_mode():
        moved = [ext.body(x)[layer] for layer in ext.layers]
        for a, b in zip(moved, ext(x), strict=True):
            torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4 * float(a.abs().max()))


def test_only_a_batch_norm_that_alone_reads_a_convolution_is_folded():
    from torch import fx, nn

    from linewatch.vision.backbones import fold_batchnorm

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.bn_a = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4)
            self.b, self.bn_b = nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4)  # b's output is read twice
            self.bn_c = nn.BatchNorm2d(4)  # after an addition, not a convolution

        def forward(self, x):
            y = self.bn_a(self.a(x))
            z = self.b(y)
            return self.bn_c(self.bn_b(z) + z)

    net = Net().eval()
    for bn in (net.bn_a, net.bn_b, net.bn_c):
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.data.uniform_(0.5, 2)
        bn.bias.data.uniform_(-1, 1)
    traced = fx.symbolic_trace(net)
    folded = fold_batchnorm(traced)
    assert isinstance(folded.bn_a, nn.Identity)
    assert isinstance(folded.bn_b, nn.BatchNorm2d) and isinstance(folded.bn_c, nn.BatchNorm2d)
    x = torch.randn(2, 3, 8, 8)
    with torch.inference_mode():
        torch.testing.assert_close(folded(x), net(x), rtol=1e-5, atol=1e-5)
    assert isinstance(traced.bn_a, nn.BatchNorm2d)  # a copy: the original is untouched


def test_a_fit_runs_the_folded_backbone_as_scoring_does(synthetic, monkeypatch):
    """The thresholds and the self-check are set on the numbers scoring will produce: a fit runs the folded body too
    (its bank choice is steady under such float rounding, ``autochoice.choose``)."""
    from linewatch.vision import backbones
    from linewatch.vision.datasets import load_dataset
    from linewatch.vision.patchcore import PatchCore

    bodies = []
    real = backbones.fold_batchnorm
    monkeypatch.setattr(backbones, "fold_batchnorm", lambda body: bodies.append(real(body)) or bodies[-1])
    ds = load_dataset(synthetic)
    det = PatchCore(image_size=64, self_check=False).fit(ds.train[:10])
    assert bodies  # the fit's own pass (channels last), the thresholds' pass
    folded = len(bodies)
    scores = [p.score for p in det.predict(ds.train[:3])]
    assert len(bodies) <= folded + 1  # folded again at most once, for the weights' memory format after the fit
    assert det.calibration_ is not None and all(np.isfinite(scores))


def test_training_imports_leave_out_what_its_peak_memory_need_not_hold():
    """Triton (torch's GPU kernel compiler) stays unloaded without a GPU, and importing the training modules loads no
    scikit-learn (nor does a training or an evaluation: ``test_selfcheck``)."""
    import os
    import subprocess
    import sys

    probe = (
        "import sys, torch; import linewatch.vision.patchcore, linewatch.vision.selfcheck, timm; "
        "print(torch.cuda.is_available(), sys.modules.get('triton', 'absent') is None, 'sklearn' in sys.modules)"
    )
    env = {k: v for k, v in os.environ.items() if k != "LINEWATCH_LOAD_TRITON"}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True)
    gpu, blocked, sklearn = out.stdout.split()
    assert sklearn == "False"
    assert blocked == ("False" if gpu == "True" else "True")
    kept = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env={**env, "LINEWATCH_LOAD_TRITON": "1"}
    )
    assert kept.stdout.split()[1] == "False"  # the escape hatch leaves it importable
