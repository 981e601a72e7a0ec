"""The self-check: defects painted on held-out good images, each with a mask that covers what changed, and the
training's report of how well the model tells them from the good images."""

import numpy as np
import pytest
from PIL import Image

from linewatch.vision.selfcheck import KINDS, paint, self_check


def textured(seed: int, w: int = 300, h: int = 200) -> Image.Image:
    rng = np.random.default_rng(seed)
    base = rng.integers(60, 200, (h // 10 + 1, w // 10 + 1, 3)).astype(np.uint8)
    return Image.fromarray(base).resize((w, h), Image.BICUBIC)


@pytest.mark.parametrize("kind", KINDS)
def test_each_painted_defect_changes_the_image_where_its_mask_is(kind):
    img = textured(0)
    rng = np.random.default_rng(1)
    out, mask = paint(rng, img, kind)
    assert out.size == img.size and mask.shape == (img.height, img.width) and mask.dtype == bool
    assert 0 < mask.mean() < 0.1  # a defect, not the whole part
    diff = np.abs(np.asarray(out, dtype=np.int16) - np.asarray(img, dtype=np.int16)).max(-1) > 0
    assert diff[mask].mean() > 0.5  # the mask marks changed pixels ...
    assert diff[~mask].mean() < 0.02  # ... and the rest of the part is as it was
    ys, xs = np.nonzero(mask)  # in the central 80 %
    assert xs.min() >= 0.1 * img.width - 2 and xs.max() <= 0.9 * img.width + 2
    assert ys.min() >= 0.1 * img.height - 2 and ys.max() <= 0.9 * img.height + 2


def test_painting_is_reproducible_and_refuses_unknown_kinds():
    img = textured(2)
    a, ma = paint(np.random.default_rng(5), img, "stain")
    b, mb = paint(np.random.default_rng(5), img, "stain")
    assert np.array_equal(np.asarray(a), np.asarray(b)) and np.array_equal(ma, mb)
    with pytest.raises(ValueError, match="unknown defect kind"):
        paint(np.random.default_rng(0), img, "dent")


def test_training_reports_the_self_check(trained, synthetic):
    det, _ = trained
    check = det.train_info_["self_check"]
    assert check["good"] == det.train_info_["holdout_images"] and check["painted"] == check["good"]
    assert 0.7 < check["image_auroc"] <= 1 and 0.7 < check["pixel_auroc"] <= 1
    assert det.train_info_["self_check_seconds"] >= 0
    # the same figure again from the function, and nothing from too few readable images
    held = det.split(sorted((synthetic / "train" / "good").iterdir()))[1]
    again = self_check(det, held, seed=det.params_["seed"])
    assert again.image_auroc == pytest.approx(check["image_auroc"], abs=1e-4)
    assert self_check(det, [synthetic / "missing.png", held[0]]) is None
    few = self_check(det, held, max_images=3)  # a large hold-out is sampled: memory and time stay flat
    assert few.good == 3 and few.painted == 3


def test_the_pixel_auroc_is_scikit_learns():
    from sklearn.metrics import roc_auc_score

    from linewatch.vision.metrics import rank_auroc

    rng = np.random.default_rng(3)
    scores = np.round(rng.normal(size=20_000), 2).astype(np.float32)  # many ties
    labels = rng.random(20_000) < 0.05
    scores[labels] += 0.5
    assert rank_auroc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-9)
    # sorting inside the caller's array (the self-check's own maps, in their shape) gives the same, exactly
    maps, masks = scores.reshape(50, 20, 20), labels.reshape(50, 20, 20)
    expected = rank_auroc(labels, scores)
    assert rank_auroc(masks, maps, overwrite=True) == expected
    scores = np.round(rng.normal(size=20_000), 2).astype(np.float32)
    labels[0], scores[0] = False, np.inf  # an infinite negative stays a negative
    maps = scores.reshape(50, 20, 20)
    kept = maps.copy()
    expected = rank_auroc(labels, scores)
    assert np.array_equal(maps, kept)  # not asked to, it leaves the caller's array as it was
    assert rank_auroc(masks, maps, overwrite=True) == expected


def test_models_sharing_a_backbone_are_checked_in_one_pass_with_the_same_figures(synthetic):
    """Banks of several sizes on one backbone (what the automatic bank choice compares) are checked on one backbone
    pass per image; each figure is the one a check of that model alone gives."""
    from linewatch.vision.autochoice import _with_bank
    from linewatch.vision.patchcore import PatchCore
    from linewatch.vision.selfcheck import prepare, self_check_many

    images = sorted((synthetic / "train" / "good").iterdir())
    det = PatchCore(image_size=64, max_bank=64, auto="off", self_check=False).fit(images)
    full = det.memory_bank_.shape[0]
    small = _with_bank(det, det.memory_bank_[:8])
    assert small.extractor_ is det.extractor_ and det.memory_bank_.shape[0] == full > 8  # the fitted model is unchanged
    prepared = prepare(det.split(images)[1], per_image=2, seed=3)
    both = self_check_many([det, small], prepared)
    for model, got in zip([det, small], both, strict=True):
        alone = self_check(det=model, prepared=prepared)
        assert (got.image_auroc, got.good, got.painted) == (alone.image_auroc, alone.good, alone.painted)
        assert got.pixel_auroc == pytest.approx(alone.pixel_auroc, abs=1e-9)
    assert both[0].pixel_auroc != both[1].pixel_auroc  # a bank of 8 entries finds the painted defects worse


def test_a_training_with_its_self_check_and_an_evaluation_leave_scikit_learn_unimported(synthetic):
    """The image AUROC is ``rank_auroc``: importing scikit-learn took 1-3 s of every training (and 120 MB)."""
    import subprocess
    import sys

    probe = (
        "import sys\n"
        "from linewatch.vision.datasets import load_dataset\n"
        "from linewatch.vision.evaluation import evaluate\n"
        "from linewatch.vision.patchcore import PatchCore\n"
        f"ds = load_dataset({str(synthetic)!r})\n"
        "det = PatchCore(image_size=64, auto='off').fit(ds.train)\n"
        "m = evaluate(det, ds)\n"
        "print(det.train_info_['self_check']['image_auroc'] > 0, m['image_auroc'] > 0, 'sklearn' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True", "False"], out.stderr[-2000:]
