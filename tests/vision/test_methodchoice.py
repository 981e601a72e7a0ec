"""method="auto": PatchCore and PaDiM both fitted, the one the self-check on painted defects prefers kept."""

import json

import numpy as np
import pytest

from linewatch.vision import methodchoice
from linewatch.vision.autochoice import Trial, choose
from linewatch.vision.datasets import load_dataset
from linewatch.vision.methodchoice import MethodChoice
from linewatch.vision.padim import Padim
from linewatch.vision.patchcore import PatchCore
from linewatch.vision.saving import create_detector, load, save


def _check_saved(det, ds, path, method):
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["method"] == "auto" == det.method and det.method_ == method
    assert manifest["training"]["method_choice"]["chosen"] == method
    # the held-out scores kept for another false-alarm rate are the kept candidate's, with its floor (PaDiM's 1)
    assert manifest["calibration_scores"]["floor"] == type(det.chosen).score_floor
    np.testing.assert_allclose(manifest["calibration_scores"]["image"], det.chosen.calibration_scores_["image"])
    back = load(path)
    assert type(back) is MethodChoice and back.method_ == method and type(back.chosen) is type(det.chosen)
    imgs = [s.path for s in ds.test[:4]]
    np.testing.assert_allclose([p.score for p in det.predict(imgs)], [p.score for p in back.predict(imgs)], rtol=1e-5)


def test_the_detector_becomes_the_candidate_the_self_check_prefers(synthetic, tmp_path):
    ds = load_dataset(synthetic)
    det = create_detector("auto", image_size=96, max_bank=48).fit(ds.train)
    choice = det.train_info_["method_choice"]
    cands = choice["candidates"]
    assert [c["method"] for c in cands] == ["patchcore", "padim"]
    assert cands[0]["bank"] in (48, 96)
    assert cands[1]["bank"] is None
    assert all(0 <= c["image_auroc"] <= 1 and 0 <= c["pixel_auroc"] <= 1 for c in cands)
    n_good = det.train_info_["self_check"]["good"]
    i = choose([Trial(**c) for c in cands], n_good)[0]
    assert i == choice["chosen_candidate"] and det.method_ == cands[i]["method"] == choice["chosen"]
    assert type(det.chosen) is (PatchCore if i == 0 else Padim)
    # the kept self-check is the chosen candidate's, on the painted copies both were checked on
    assert det.train_info_["self_check"]["pixel_auroc"] == cands[i]["pixel_auroc"]
    assert det.calibration_ is not None
    assert ("search" in det.train_info_) == (i == 0)  # the note of the search auto picked: PatchCore's only
    _check_saved(det, ds, save(det, tmp_path / "m"), det.method_)


def test_a_chosen_padim_is_a_plain_padim_everywhere(synthetic, tmp_path, monkeypatch):
    monkeypatch.setattr(methodchoice, "choose", lambda trials, n_good=100: (1, "forced by the test"))
    ds = load_dataset(synthetic)
    det = create_detector("auto", image_size=96, max_bank=48, n_features=40).fit(ds.train)
    assert type(det.chosen) is Padim and det.method_ == "padim" and det.chosen.channels_.numel() == 40
    assert det.params_["n_features"] == 40 and det.get_params()["n_features"] == 40
    assert det.train_info_["method_choice"]["reason"] == "forced by the test"
    assert "search" not in det.train_info_  # a PaDiM has no bank to search: no note of the search auto picked
    _check_saved(det, ds, save(det, tmp_path / "m"), "padim")
    # the same PaDiM as one fitted alone with the same parameters (the self-check aside, which only reads it), up to
    # float rounding: it was fitted from PatchCore's channels_last backbone pass
    assert det.chosen.train_info_["tapped"] is True
    alone = Padim(image_size=96, n_features=40).fit(ds.train)
    np.testing.assert_allclose(det.chosen.mean_.numpy(), alone.mean_.numpy(), rtol=1e-4, atol=1e-5)
    # thresholds within 1e-4; the scales (differences of scores) carry that rounding a little further
    assert alone.calibration_.to_dict() == pytest.approx(det.calibration_.to_dict(), rel=1e-3)
    assert alone.calibration_.image_threshold == pytest.approx(det.calibration_.image_threshold, rel=1e-4)


def test_without_held_out_images_patchcore_stays(synthetic):
    det = create_detector("auto", image_size=96, holdout=0).fit(load_dataset(synthetic).train)
    assert det.method_ == "patchcore" and det.train_info_["method_choice"]["candidates"] == []
    assert "no held-out" in det.train_info_["method_choice"]["reason"]


def test_the_command_line_says_which_method_it_kept(synthetic, tmp_path, cli_here):
    r = cli_here("train", synthetic, "--out", tmp_path / "m", "--method", "auto", "--image-size", "96", "-q")
    assert r.exit_code == 0, r.stderr[-2000:]
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    choice = manifest["training"]["method_choice"]
    text = " ".join(r.stderr.split())
    assert f"trained {choice['chosen']} on" in text
    assert f"method chosen: {choice['chosen']}" in text and choice["reason"] in text
    assert "patchcore, bank" in text and "padim: self-check image" in text


def test_a_chosen_model_exports_to_onnx_with_parity(synthetic, tmp_path, monkeypatch):
    from linewatch.vision.export import export_onnx
    from linewatch.vision.runtime import OnnxModel

    monkeypatch.setattr(methodchoice, "choose", lambda trials, n_good=100: (1, "forced by the test"))
    ds = load_dataset(synthetic)
    det = create_detector("auto", image_size=96).fit(ds.train)
    path = save(det, tmp_path / "m")
    export_onnx(path)
    imgs = [s.path for s in ds.test[:4]]
    onnx = [p.score for p in OnnxModel(path).predict(imgs)]
    np.testing.assert_allclose(onnx, [p.score for p in det.predict(imgs)], rtol=1e-3)
