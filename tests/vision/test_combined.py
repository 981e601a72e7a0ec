"""method="combined": PatchCore and PaDiM fitted together, the image score their normalised sum, PatchCore's map."""

import json
import math
import shutil

import numpy as np
import pytest
import torch

import linewatch.vision.methodchoice as mc
from linewatch.errors import LinewatchError
from linewatch.vision.autochoice import PER_IMAGE
from linewatch.vision.datasets import load_dataset
from linewatch.vision.export import export_onnx
from linewatch.vision.images import open_image
from linewatch.vision.methodchoice import Combined
from linewatch.vision.padim import Padim
from linewatch.vision.patchcore import PatchCore
from linewatch.vision.recalibration import recalibrate
from linewatch.vision.runtime import OnnxModel
from linewatch.vision.saving import create_detector, load, save
from linewatch.vision.selfcheck import WORKING, prepare, self_check


@pytest.fixture(scope="module")
def combined(synthetic, tmp_path_factory):
    ds = load_dataset(synthetic)
    det = create_detector("combined", image_size=96, max_bank=48).fit(ds.train)
    return det, ds, save(det, tmp_path_factory.mktemp("models") / "combined")


def test_the_score_adds_both_models_over_their_thresholds_and_the_map_is_patchcores(combined):
    det, ds, _ = combined
    patchcore = PatchCore(image_size=96, max_bank=48, self_check=False).fit(ds.train)
    padim = Padim(image_size=96, self_check=False).fit(ds.train)
    # the PaDiM part saw PatchCore's channels_last backbone pass: the same features up to float rounding
    assert det.weights_.tolist() == pytest.approx(
        [1 / patchcore.calibration_.image_threshold, 1 / padim.calibration_.image_threshold], rel=1e-4
    )
    imgs = [s.path for s in ds.test]
    a = np.array([p.score for p in patchcore.predict(imgs)])
    b = np.array([p.score for p in padim.predict(imgs)])
    got = [p.score for p in det.predict(imgs)]
    np.testing.assert_allclose(got, a * det.weights_[0].item() + b * det.weights_[1].item(), rtol=1e-4)
    x = torch.from_numpy(det.preprocess(open_image(imgs[0]))[None])
    with torch.inference_mode():
        np.testing.assert_allclose(det._score(x)[1].numpy(), patchcore._score(x)[1].numpy(), rtol=1e-5, atol=1e-6)
    # thresholds of the sum, set on the held-out good images; the bank chosen is PatchCore's
    assert det.calibration_ is not None and det.params_["max_bank"] == patchcore.params_["max_bank"]
    assert det.train_info_["combined"]["weights"] == pytest.approx(det.weights_.tolist(), rel=1e-3)


def test_saved_loaded_and_exported_scores_agree(combined):
    det, ds, path = combined
    assert json.loads((path / "manifest.json").read_text())["method"] == "combined"
    back = load(path)
    assert type(back) is Combined
    imgs = [s.path for s in ds.test[:6]]
    want = [p.score for p in det.predict(imgs)]
    np.testing.assert_allclose([p.score for p in back.predict(imgs)], want, rtol=1e-6)
    export_onnx(path)
    onnx = OnnxModel(path)
    np.testing.assert_allclose([p.score for p in onnx.predict(imgs)], want, rtol=1e-3)
    assert onnx.predict(imgs[:1])[0].embeddings is not None  # the search vectors come with it


def test_without_held_out_images_there_is_nothing_to_weigh_the_scores_on(synthetic):
    with pytest.raises(LinewatchError, match="holdout must be > 0"):
        create_detector("combined", holdout=0).fit(load_dataset(synthetic).train)


def test_the_padim_part_is_fitted_on_patchcores_backbone_pass(combined):
    det, ds, _ = combined
    assert det.train_info_["combined"]["padim_tapped"] is True
    alone = Padim(image_size=96, self_check=False).fit(ds.train)  # its own pass over the same training images
    part = det._parts[1]
    assert torch.equal(part.channels_, alone.channels_)
    torch.testing.assert_close(part.mean_, alone.mean_, rtol=1e-4, atol=1e-5)
    rel = torch.linalg.matrix_norm(part.inv_cov_ - alone.inv_cov_) / torch.linalg.matrix_norm(alone.inv_cov_)
    assert float(rel.max()) < 1e-3


def test_a_tap_of_other_settings_is_refused(synthetic):
    train = load_dataset(synthetic).train
    padim = Padim(image_size=64, self_check=False)
    source = PatchCore(image_size=64, max_bank=32, auto="off", self_check=False)
    source.feature_taps = (padim.tap(),)
    source.fit(train)
    other = PatchCore(image_size=96, max_bank=32, auto="off", self_check=False).fit(train)
    _, held = source.split(train)
    assert not padim.finish_tap(other, held) and padim.mean_ is None  # another input size: nothing changed
    assert padim.finish_tap(source, held) and padim.calibration_ is not None
    assert padim.predict([held[0]])[0].score >= 0


def test_without_a_usable_tap_the_padim_part_is_fitted_on_its_own(synthetic, monkeypatch):
    """When PatchCore's automatic choice ends on other settings than the tapped ones, PaDiM gets its own fit with
    PatchCore's resolved layers and input size."""
    monkeypatch.setattr(Padim, "finish_tap", lambda self, source, held, progress=None: False)
    train = load_dataset(synthetic).train
    det = create_detector("combined", image_size=64, max_bank=32, self_check=False).fit(train)
    assert det.train_info_["combined"]["padim_tapped"] is False
    patchcore, padim = det._parts
    assert padim.params_["image_size"] == patchcore.params_["image_size"] == 64
    assert padim.extractor_ is patchcore.extractor_ and padim.mean_ is not None
    assert det.predict([train[0]])[0].score > 0


def test_one_pass_over_the_held_out_images_sets_both_parts_and_the_sum(combined):
    """The parts' thresholds, the weights and the sum's thresholds come from one backbone pass over the held-out
    images: the same as calibrating each part, then the combined model, on its own pass."""
    det, ds, _ = combined
    _, held = det.split(ds.train)
    patchcore, padim = det._parts
    got = det.calibration_
    for part, w in zip((patchcore, padim), det.weights_.tolist(), strict=True):
        kept = part.calibration_
        part._calibrate(held)
        assert part.calibration_.to_dict() == pytest.approx(kept.to_dict(), rel=1e-5)
        assert 1 / part.calibration_.image_threshold == pytest.approx(w, rel=1e-5)
    try:
        det._calibrate(held)
        assert det.calibration_.to_dict() == pytest.approx(got.to_dict(), rel=1e-5)
    finally:
        det.calibration_ = got


def test_held_out_images_that_cannot_be_read_give_a_clear_error_and_change_nothing(combined, tmp_path):
    det, _, _ = combined
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    patchcore, padim = det._parts
    before = (det.weights_.clone(), det.calibration_, patchcore.calibration_, padim.calibration_)
    with pytest.raises(LinewatchError, match="none of the held-out good images could be read"):
        det._calibrate_both(patchcore, padim, [bad], None)
    assert torch.equal(det.weights_, before[0])
    assert (det.calibration_, patchcore.calibration_, padim.calibration_) == before[1:]


def test_the_self_check_is_the_bank_choices_pass_with_padim_scored_in_it(combined):
    """PaDiM is scored in PatchCore's bank-choice pass, and the combined model's self-check is made from that pass:
    the same figures as a check of the final model on the same painted images (three copies of each held-out one)."""
    det, ds, _ = combined
    reported = det.train_info_["self_check"]
    assert det.train_info_["auto"]["candidates"]  # the fixture's fit made a bank choice
    _, held = det.split(ds.train)
    painted = prepare(held, PER_IMAGE, det.params_["seed"], max_side=WORKING * math.ceil(det.preprocess.input_size))
    fresh = self_check(det, prepared=painted).to_dict()
    assert reported["painted"] == PER_IMAGE * reported["good"] == fresh["painted"]
    assert fresh == pytest.approx(reported, abs=1e-4)
    assert "_choice_scores" not in det._parts[0].__dict__  # used once, not kept with the model


def test_a_combined_fit_makes_no_self_check_pass_of_its_own_after_a_bank_choice(synthetic, monkeypatch):
    def second_pass(*args, **kwargs):
        raise AssertionError("a self-check pass of its own")

    monkeypatch.setattr(Combined, "_self_check", second_pass)
    det = create_detector("combined", image_size=96, max_bank=48).fit(load_dataset(synthetic).train)
    assert det.train_info_["self_check"]["painted"] == PER_IMAGE * det.train_info_["self_check"]["good"]


def test_without_a_bank_choice_the_self_check_is_a_pass_of_its_own(synthetic):
    det = create_detector("combined", image_size=96, max_bank=48, auto="off").fit(load_dataset(synthetic).train)
    check = det.train_info_["self_check"]
    assert check["painted"] == check["good"] > 0 and check["image_auroc"] is not None


def _parts_anywhere(n: int, seed: int = 0) -> list:
    """Good synthetic parts placed anywhere in the frame (not aligned): a position's Gaussian learns little there."""
    from PIL import Image

    from linewatch.vision.synthetic import good_part

    rng = np.random.default_rng(seed)
    images = []
    for _ in range(n):
        canvas = Image.new("RGB", (160, 160), (90, 90, 95))
        canvas.paste(good_part(rng, 96), tuple(int(v) for v in rng.integers(0, 64, 2)))
        images.append(canvas)
    return images


@pytest.fixture(scope="module")
def anywhere(tmp_path_factory):
    """A combined model of parts that sit anywhere in the frame, its PaDiM share forced to none after the choice has
    run (the choice itself is tested on scores, below: on 30 small images its outcome hangs on a handful of held-out
    images), saved and exported."""
    images = _parts_anywhere(30)
    choose = mc.choose_share

    def none(*args):
        return {**choose(*args), "share": 0.0, "reason": "forced by the test"}

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(mc, "choose_share", none)
        det = create_detector("combined", image_size=96, max_bank=48).fit(images)
    path = save(det, tmp_path_factory.mktemp("models") / "anywhere")
    export_onnx(path)
    return det, images, path


def test_choose_share_keeps_padim_unless_a_smaller_share_is_clearly_better():
    rng = np.random.default_rng(0)
    good, bad = rng.normal(1.0, 0.1, 40), rng.normal(1.4, 0.1, 120)  # PatchCore's: the painted copies stand out
    noise = (rng.normal(1.0, 0.3, 40), rng.normal(1.0, 0.3, 120))  # a PaDiM that sees nothing
    helps = (rng.normal(1.0, 0.1, 40), rng.normal(1.3, 0.1, 120))  # a PaDiM that sees them too
    w = np.array([1.0, 1.0])
    assert mc.choose_share(w, (good, bad), noise, 40)["share"] == 0.0
    kept = mc.choose_share(w, (good, bad), helps, 40)
    assert kept["share"] == 1.0 and "no smaller share" in kept["reason"]
    assert [c["share"] for c in kept["candidates"]] == list(mc.PADIM_SHARES)
    # the same scores: no share is better, the whole one stays
    assert mc.choose_share(w, (good, bad), (good, bad), 40)["share"] == 1.0
    # a lead under the margin (few held-out images make it large) does not replace the whole share
    slight = (np.r_[helps[0][:-1], 1.5], helps[1])
    figures = mc.choose_share(w, (good, bad), slight, 4)
    assert figures["share"] == 1.0 and figures["candidates"][2]["image_auroc"] > figures["candidates"][0]["image_auroc"]


def test_a_lead_that_a_few_held_out_images_do_not_hold_keeps_the_whole_share():
    """Three held-out images and nine painted copies: one pair is 0.037 of AUROC, more than the margin. Without
    PaDiM the painted copies rank one pair better, but over resamples of the three images it is not better in 95 %
    of them, so the whole share stays (a service test's 12-image model lost image AUROC 1.0 -> 0.73 to such a lead)."""
    good, bad = np.array([1.0, 1.2, 1.4]), np.array([1.1, 1.3, 1.5, 1.25, 1.6, 1.7, 1.35, 1.8, 1.05])
    padim = (np.zeros(3), np.r_[np.zeros(8), -0.3])
    got = mc.choose_share(np.array([1.0, 1.0]), (good, bad), padim, 3)
    auroc = {c["share"]: c["image_auroc"] for c in got["candidates"]}
    assert auroc[0.0] >= auroc[1.0] + mc.margin_for(3)  # the lead is over the margin ...
    assert got["share"] == 1.0 and "resamples" in got["reason"]  # ... but does not hold
    won = {c["share"]: c["resamples_won"] for c in got["candidates"]}
    assert won[0.0] < mc.CONFIDENCE
    # the same lead over 40 held-out images, each with its three copies, holds
    rng = np.random.default_rng(0)
    good, bad = rng.normal(1.0, 0.1, 40), rng.normal(1.25, 0.1, 120)
    noise = (rng.normal(1.0, 0.3, 40), rng.normal(1.0, 0.3, 120))
    many = mc.choose_share(np.array([1.0, 1.0]), (good, bad), noise, 40)
    assert many["share"] < 1.0 and {c["share"]: c["resamples_won"] for c in many["candidates"]}[many["share"]] >= 0.95


def test_padims_share_follows_the_self_check(combined, anywhere):
    """Aligned parts keep PaDiM's whole share (it adds to PatchCore on their painted copies); the share chosen sets
    the weight and the self-check reported is that share's."""
    det, _, _ = combined
    info = det.train_info_["combined"]
    assert info["padim_share"] == 1.0 and info["share_choice"]["share"] == 1.0
    by_share = {c["share"]: c["image_auroc"] for c in info["share_choice"]["candidates"]}
    assert by_share[1.0] > by_share[0.0]
    moved, _, _ = anywhere
    info = moved.train_info_["combined"]
    assert info["padim_share"] == 0.0  # forced
    by_share = {c["share"]: c["image_auroc"] for c in info["share_choice"]["candidates"]}
    assert moved.train_info_["self_check"]["image_auroc"] == pytest.approx(by_share[0.0], abs=1e-4)
    patchcore, padim = moved._parts
    w = moved.weights_.tolist()
    assert w[0] == pytest.approx(1 / patchcore.calibration_.image_threshold, rel=1e-5)
    assert w[1] == pytest.approx(info["padim_share"] / padim.calibration_.image_threshold, rel=1e-5)


def test_without_padims_share_it_is_not_computed_and_the_saved_and_exported_models_agree(anywhere, monkeypatch):
    det, images, path = anywhere
    assert det.train_info_["combined"]["padim_share"] == 0.0
    patchcore, padim = det._parts
    assert det._graph.padim is None and det._scoring == (patchcore,)

    def no_padim(*args, **kwargs):
        raise AssertionError("PaDiM computed")

    monkeypatch.setattr(padim, "_score", no_padim)
    monkeypatch.setattr(padim, "_score_features", no_padim, raising=False)
    want = [p.score for p in det.predict(images[:6])]
    alone = [p.score * det.weights_[0].item() for p in patchcore.predict(images[:6])]
    np.testing.assert_allclose(want, alone, rtol=1e-5)
    monkeypatch.undo()
    back = load(path)
    assert type(back) is Combined and float(back.weights_[1]) == 0 and back._graph.padim is None
    np.testing.assert_allclose([p.score for p in back.predict(images[:6])], want, rtol=1e-6)
    np.testing.assert_allclose([p.score for p in OnnxModel(path).predict(images[:6])], want, rtol=1e-3)


def test_with_the_automatic_choice_off_padim_keeps_its_whole_share(synthetic, monkeypatch):
    monkeypatch.setattr(mc, "choose_share", lambda *a, **k: pytest.fail("a share was chosen"))
    det = create_detector("combined", image_size=96, max_bank=48, auto="off").fit(_parts_anywhere(16))
    assert det.train_info_["combined"]["padim_share"] == 1.0 and "share_choice" not in det.train_info_["combined"]
    assert det._graph.padim is not None


@pytest.mark.parametrize("method", ["combined", "padim", "patchcore"])
def test_a_model_of_identical_images_calls_that_image_good(method, tmp_path):
    """Training images that do not vary at all (copies of one photo, a flat surface): their held-out scores are
    rounding, which a weight or a threshold set on them turned into defects: the training image itself was flagged
    (combined: score 55 against a threshold of 2)."""
    from PIL import Image

    from linewatch.vision.synthetic import good_part

    for name, image in (
        ("flat", Image.new("RGB", (96, 96), (120, 120, 120))),
        ("same", good_part(np.random.default_rng(0), 96)),
    ):
        det = create_detector(method, image_size=64, **({} if method == "padim" else {"max_bank": 32}))
        det.fit([image] * 12)
        if method == "combined":
            assert float(det.weights_[1]) <= 1.0  # PaDiM's threshold is at least one standard deviation
        for pred in det.predict([image, image.copy()]):
            assert not pred.is_anomalous, (name, pred.score, det.calibration_)
        path = save(det, tmp_path / f"{method}-{name}")
        export_onnx(path)
        for pred in OnnxModel(path).predict([image]):
            assert not pred.is_anomalous, (name, "onnx", pred.score, det.calibration_)
        changed = np.asarray(image).copy()
        changed[30:50, 30:50] = 255 - changed[30:50, 30:50]
        assert det.predict([Image.fromarray(changed)])[0].is_anomalous


def test_calibrating_again_on_the_held_out_images_gives_trainings_thresholds(combined, tmp_path):
    """The scores kept at training are the combined score (both parts weighed), as a recalibration scores images."""
    det, ds, path = combined
    model = shutil.copytree(path, tmp_path / "model")
    _, held = det.split(ds.train)
    kept = json.loads((model / "manifest.json").read_text())["calibration_scores"]
    assert kept["images"] == len(held) and kept["floor"] == 0.0
    done = recalibrate(model, held)
    assert done.after.to_dict() == pytest.approx(det.calibration_.to_dict(), rel=1e-4)
    assert recalibrate(model, false_alarm_rate=det.calibration_.false_alarm_rate).after == done.after


def test_the_looks_kept_are_those_its_predictions_carry(combined):
    """The held-out images' looks (``appearance``) come from the calibration pass of both parts: PatchCore's grids,
    as the search vectors the service stores of each photo."""
    from linewatch.vision.appearance import kept_reference_looks

    det, ds, path = combined
    _, held = det.split(ds.train)
    looks = kept_reference_looks(json.loads((path / "manifest.json").read_text()))
    preds = det.predict(held)
    assert looks.vectors.shape == (len(held), preds[0].embeddings.image.size)
    np.testing.assert_allclose(looks.vectors, np.stack([p.embeddings.image for p in preds]), atol=2e-3)
    np.testing.assert_allclose(looks.brightness, [p.brightness for p in preds], atol=1e-5)
