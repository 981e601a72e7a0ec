"""PatchCore's automatic choice of bank size and layers by the self-check on painted defects."""

import json

import numpy as np
import pytest

from linewatch.vision.autochoice import MARGIN, SATURATED, Trial, choose, finer_size, margin_for
from linewatch.vision.datasets import load_dataset
from linewatch.vision.patchcore import PatchCore
from linewatch.vision.saving import load, save


def trial(score, bank=2048, strides=(4, 8, 16)):
    return Trial([f"stride{s}" for s in strides], list(strides), bank, score, score, score)


def test_the_default_stays_unless_another_candidate_is_clearly_better():
    hi = SATURATED + 0.005  # a saturated self-check: the larger bank too must win by the margin
    assert choose([trial(hi), trial(hi + MARGIN / 2, 4096)])[0] == 0
    i, why = choose([trial(0.90), trial(0.95, 4096), trial(0.93, 2048, (8, 16))])
    assert i == 1 and "0.950" in why and "0.900" in why
    i, why = choose([trial(0.90), trial(0.89, 2048, (8, 16)), trial(0.92, 2048, (8, 16))])
    assert i == 2 and "0.920" in why and "0.900" in why
    # on a tie the earlier (cheaper) candidate wins
    assert choose([trial(0.80), trial(0.80, 2048, (8, 16)), trial(0.90, 4096), trial(0.90, 2048, (8, 16))])[0] == 2
    assert choose([trial(0.80), trial(0.90, 2048, (8, 16)), trial(0.90, 4096, (8, 16))])[0] == 1
    # nothing to compare against: the default
    assert choose([trial(None), trial(0.99, 4096)])[0] == 0
    assert choose([trial(0.5), trial(None, 4096)])[0] == 0
    # few held-out images: a noisy self-check needs a larger lead
    assert margin_for(4) == pytest.approx(0.01) and margin_for(10_000) == MARGIN
    assert choose([trial(0.985), trial(0.991, 4096)], n_good=100)[0] == 1
    assert choose([trial(0.985), trial(0.991, 4096)], n_good=4)[0] == 0


def test_below_saturation_the_larger_bank_stays_unless_clearly_worse():
    # magnetic_tile's fourth fit: the default 0.9445, its larger bank 0.9435 (better on real defects)
    i, why = choose([trial(0.9445), trial(0.9435, 4096)], n_good=76)
    assert i == 1 and "below" in why and "4096" in why
    assert choose([trial(0.90), trial(0.90 - MARGIN * 1.5, 4096)])[0] == 0  # clearly worse: the default
    assert choose([trial(0.90), trial(0.90 + MARGIN / 2, 4096)])[0] == 1
    # the margin grows with few held-out images, so "clearly worse" does too
    assert choose([trial(0.90), trial(0.895, 4096)], n_good=4)[0] == 1
    assert choose([trial(0.90), trial(0.895, 4096)], n_good=100)[0] == 0
    # only the same layers and input with a larger bank: not another layer set, size or method
    assert choose([trial(0.90), trial(0.90, 4096, (8, 16))])[0] == 0
    finer = Trial(["stride4", "stride8", "stride16"], [4, 8, 16], 4096, 0.9, 0.9, 0.9, image_size=320)
    assert (
        choose([Trial(["stride4", "stride8", "stride16"], [4, 8, 16], 2048, 0.9, 0.9, 0.9, image_size=256), finer])[0]
        == 0
    )
    padim = Trial(["stride4", "stride8", "stride16"], [4, 8, 16], None, 0.9, 0.9, 0.9, method="padim")
    assert choose([trial(0.90), padim])[0] == 0
    # another candidate must then beat the larger bank by the margin, not the default
    assert choose([trial(0.90), trial(0.905, 4096), trial(0.906, 2048, (8, 16))])[0] == 1
    i, why = choose([trial(0.90), trial(0.905, 4096), trial(0.909, 2048, (8, 16))])
    assert i == 2 and "larger bank" in why


@pytest.fixture(scope="module")
def full_auto(synthetic, tmp_path_factory):
    ds = load_dataset(synthetic)
    det = PatchCore(image_size=128, max_bank=64, auto="full").fit(ds.train)
    return det, ds, save(det, tmp_path_factory.mktemp("models") / "auto")


def test_full_choice_reports_every_candidate_and_keeps_the_chosen_one(full_auto):
    det, ds, _ = full_auto
    auto = det.train_info_["auto"]
    cands = auto["candidates"]
    # two layer sets and a finer input, each with the bank of bank_size entries and one of twice as many
    assert [(c["strides"], c["bank"], c["image_size"]) for c in cands] == [
        ([4, 8, 16], 64, 128),
        ([4, 8, 16], 128, 128),
        ([8, 16], 64, 128),
        ([8, 16], 128, 128),
        ([4, 8, 16], 64, 160),
        ([4, 8, 16], 128, 160),
    ]
    assert all(0 <= c["image_auroc"] <= 1 and 0 <= c["pixel_auroc"] <= 1 for c in cands)
    i = auto["chosen_candidate"]
    n_good = det.train_info_["self_check"]["good"]
    assert i == choose([Trial(**c) for c in cands], n_good)[0] and auto["reason"]
    chosen = cands[i]
    # the model is the chosen candidate: its bank, its layers, its resolved parameters
    assert det.memory_bank_.shape[0] == chosen["bank"] == auto["chosen"]["bank"] == det.params_["max_bank"]
    assert det.params_["layers"] == chosen["layers"] == auto["chosen"]["layers"]
    assert det.extractor_.layers == chosen["layers"]
    assert det.params_["image_size"] == chosen["image_size"] == auto["chosen"]["image_size"]
    assert det.preprocess.input_hw == (chosen["image_size"], chosen["image_size"])
    assert det.train_info_["self_check"]["image_auroc"] == chosen["image_auroc"]
    # the constructor's parameters stay as given
    assert det.get_params()["auto"] == "full" and det.get_params()["max_bank"] == 64
    assert det.get_params()["layers"] is None
    # thresholds were set with the chosen bank: setting them again gives the same
    before = det.calibration_.to_dict()
    _, held = det.split(ds.train)
    det._calibrate(held)
    assert det.calibration_.to_dict() == pytest.approx(before)


def test_a_chosen_model_saves_and_loads_with_its_reasons(full_auto):
    det, ds, path = full_auto
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["training"]["auto"]["reason"] == det.train_info_["auto"]["reason"]
    assert manifest["hyperparameters"]["auto"] == "full"
    back = load(path)
    imgs = [s.path for s in ds.test[:4]]
    a = [p.score for p in det.predict(imgs)]
    b = [p.score for p in back.predict(imgs)]
    np.testing.assert_allclose(a, b, rtol=1e-5)


def test_bank_choice_on_a_set_too_small_for_a_larger_bank_is_the_plain_fit(synthetic):
    train = load_dataset(synthetic).train
    plain = PatchCore(image_size=128).fit(train)
    auto = PatchCore(image_size=128, auto="bank").fit(train)
    assert "no choice" in auto.train_info_["auto"]["reason"] and auto.train_info_["auto"]["candidates"] == []
    assert auto.params_["max_bank"] == plain.params_["max_bank"] == 2048
    assert np.array_equal(auto.memory_bank_.numpy(), plain.memory_bank_.numpy())
    assert auto.train_info_["self_check"] == plain.train_info_["self_check"]
    assert auto.calibration_.to_dict() == plain.calibration_.to_dict()


def test_bank_choice_checks_both_sizes(synthetic):
    det = PatchCore(image_size=128, max_bank=48, auto="bank", self_check=False).fit(load_dataset(synthetic).train)
    cands = det.train_info_["auto"]["candidates"]
    assert [c["bank"] for c in cands] == [48, 96] and all(c["strides"] == [4, 8, 16] for c in cands)
    assert det.memory_bank_.shape[0] == cands[det.train_info_["auto"]["chosen_candidate"]]["bank"]
    # the choice needs the self-check whatever the setting; the model still reports it
    assert "self_check" in det.train_info_ and det.params_["self_check"] is False


def test_the_command_line_reports_the_choice_and_refuses_an_unknown_mode(synthetic, tmp_path, cli_here):
    lw = ["train", synthetic, "--out", tmp_path / "m"]
    r = cli_here(*lw, "--image-size", "96", "--bank-size", "32", "--auto", "bank", "-q")
    assert r.exit_code == 0, r.stderr[-2000:]
    training = json.loads((tmp_path / "m" / "manifest.json").read_text())["training"]
    auto = training["auto"]
    text = " ".join(r.stderr.split())
    # and the bank search this CPU picked (``search="auto"``), with why
    assert f"bank search: {training['search']['chosen']}, {training['search']['reason']}" in text
    assert f"automatic choice (bank, {auto['seconds']:.1f} s in all): bank {auto['chosen']['bank']} entries" in text
    assert auto["reason"] in text and text.count(": self-check image") == 2
    share = training["combined"]["share_choice"]  # the default method's other choice: PaDiM's share
    assert f"PaDiM's share in the image score: {share['share']:g}, {share['reason']}" in text
    # a threshold on few held-out images says how loosely it holds its rate, and how to tighten it
    from linewatch.core.drift import rate_bound

    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    held, cal = manifest["calibration_scores"]["image"], manifest["calibration"]
    bound = rate_bound(sum(x >= cal["image_threshold"] for x in held), len(held))
    assert f"the threshold rests on {len(held)} held-out good images: its false-alarm rate may be up to " in text
    assert f"{bound:.1%} (95 %) rather than 1.0%" in text and "linewatch calibrate" in text
    bad = cli_here(*lw, "--auto", "always")
    assert bad.exit_code == 2 and "auto" in bad.stderr


def test_the_finer_resolution_candidate():
    assert [finer_size(s) for s in (32, 128, 224, 256, 320, 512)] == [64, 160, 288, 320, 416, 640]
    assert all(finer_size(s) % 32 == 0 and finer_size(s) > s for s in range(32, 2048, 8))


def test_a_chosen_finer_input_is_the_model_everywhere(synthetic, tmp_path, monkeypatch):
    """Whichever candidate the self-check prefers: force the finer input's larger bank and check that the model, its
    preprocessing, its manifest and its saved and loaded copy all use that input size."""
    from linewatch.vision import autochoice

    monkeypatch.setattr(autochoice, "choose", lambda trials, n_good=100: (len(trials) - 1, "forced by the test"))
    ds = load_dataset(synthetic)
    det = PatchCore(image_size=96, max_bank=32, auto="full", layers=["blocks.2", "blocks.4"]).fit(ds.train)
    auto = det.train_info_["auto"]
    # layers given: no coarser layer set, only the finer input
    assert [(c["bank"], c["image_size"]) for c in auto["candidates"]] == [(32, 96), (64, 96), (32, 128), (64, 128)]
    assert auto["chosen"] == {"layers": ["blocks.2", "blocks.4"], "bank": 64, "image_size": 128}
    assert det.params_["image_size"] == 128 and det.get_params()["image_size"] == 96
    assert det.memory_bank_.shape[0] == 64 and det.preprocess.input_hw == (128, 128)
    path = save(det, tmp_path / "m")
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["image_size"] == 128 and manifest["training"]["auto"]["chosen"]["image_size"] == 128
    back = load(path)
    imgs = [s.path for s in ds.test[:3]]
    np.testing.assert_allclose([p.score for p in back.predict(imgs)], [p.score for p in det.predict(imgs)], rtol=1e-5)


def test_size_choice_fits_both_inputs_on_a_subset_then_the_chosen_one_on_all(synthetic, monkeypatch):
    from linewatch.vision import autochoice

    monkeypatch.setattr(autochoice, "SUBSET_TRAIN", 12)
    ds = load_dataset(synthetic)
    det = PatchCore(image_size=96, max_bank=32, auto="size").fit(ds.train)
    auto = det.train_info_["auto"]
    sized = auto["size_choice"]
    assert sized["sizes"] == [96, 128] and sized["train_images"] == 12
    assert sized["held_out_images"] == len(det.split(ds.train)[1])
    assert [c["image_size"] for c in sized["candidates"]] == [96, 128]
    assert all(0 <= c["pixel_auroc"] <= 1 and c["fit_seconds"] > 0 for c in sized["candidates"])
    default, finer = (c["pixel_auroc"] for c in sized["candidates"])
    assert sized["chosen"] == (128 if finer >= default + sized["margin"] else 96)
    assert str(sized["chosen"]) in sized["reason"] and auto["seconds"] >= sized["seconds"]
    # then the bank choice on the whole set, at the chosen input only
    assert {c["image_size"] for c in auto["candidates"]} == {sized["chosen"]}
    assert [c["bank"] for c in auto["candidates"]] == [32, 64]
    assert det.params_["image_size"] == sized["chosen"] == auto["chosen"]["image_size"]
    assert det.train_info_["train_images"] == len(det.split(ds.train)[0])  # the real fit uses every image


def test_a_finer_input_chosen_on_a_subset_is_the_combined_model_everywhere(synthetic, tmp_path, monkeypatch):
    """Force the finer input (any lead is enough): PaDiM, fitted from PatchCore's pass, follows it; the saved and
    loaded model scores at it."""
    from linewatch.vision import autochoice
    from linewatch.vision.methodchoice import Combined

    monkeypatch.setattr(autochoice, "SUBSET_TRAIN", 12)
    monkeypatch.setattr(autochoice, "margin_for", lambda n_good: -1.0)
    ds = load_dataset(synthetic)
    det = Combined(image_size=96, max_bank=32, auto="size").fit(ds.train)
    assert det.train_info_["auto"]["size_choice"]["chosen"] == 128
    patchcore, padim = det._parts
    assert patchcore.params_["image_size"] == padim.params_["image_size"] == det.params_["image_size"] == 128
    assert det.train_info_["combined"]["padim_tapped"]  # one backbone pass for both at the chosen input
    assert det.get_params()["image_size"] == 96
    path = save(det, tmp_path / "m")
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["image_size"] == 128 and manifest["training"]["auto"]["size_choice"]["chosen"] == 128
    back = load(path)
    assert back.preprocess.input_hw == (128, 128)
    imgs = [s.path for s in ds.test[:3]]
    np.testing.assert_allclose([p.score for p in back.predict(imgs)], [p.score for p in det.predict(imgs)], rtol=1e-5)


def test_the_command_line_says_how_the_input_size_was_chosen(synthetic, tmp_path, cli_here):
    out = tmp_path / "m"
    r = cli_here(
        "train", synthetic, "--out", out, "--image-size", "64", "--bank-size", "32", "--auto", "size", "--method",
        "patchcore", "-q",
    )  # fmt: skip
    assert r.exit_code == 0, r.stderr[-2000:]
    sized = json.loads((out / "manifest.json").read_text())["training"]["auto"]["size_choice"]
    text = " ".join(r.stderr.split())
    assert f"input size chosen on {sized['train_images']} training images" in text and sized["reason"] in text
