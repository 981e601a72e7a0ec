"""Setting a trained model's thresholds again without training (``linewatch calibrate``)."""

import json
import shutil

import numpy as np
import pytest

from linewatch.errors import LinewatchError, ModelFileError
from linewatch.vision.datasets import load_dataset
from linewatch.vision.recalibration import (
    HISTORY,
    HISTORY_SCORES,
    MAX_KEPT,
    kept_scores,
    recalibrate,
    restore_calibration,
)
from linewatch.vision.saving import load
from linewatch.vision.thresholds import calibrate


@pytest.fixture
def model(trained, tmp_path):
    """A copy of the session's trained PatchCore, to change."""
    _, path = trained
    return shutil.copytree(path, tmp_path / "model")


def _manifest(path):
    return json.loads((path / "manifest.json").read_text())


def test_training_keeps_the_held_out_scores_its_thresholds_came_from(trained, synthetic):
    det, path = trained
    kept = _manifest(path)["calibration_scores"]
    _, held = det.split(load_dataset(synthetic).train)
    assert kept["source"] == "training" and kept["images"] == len(held) == len(kept["image"]) == len(kept["peak"])
    assert kept["floor"] == 0.0
    scores, peaks = [], []
    for score, amap, _size, _name in det.raw_scores(held):
        scores.append(score)
        peaks.append(amap.max())
    np.testing.assert_allclose(kept["image"], scores, rtol=1e-5)
    np.testing.assert_allclose(kept["peak"], peaks, rtol=1e-5)
    again = calibrate(np.array(kept["image"]), np.array(kept["peak"]), det.calibration_.false_alarm_rate)
    assert again == det.calibration_


def test_another_rate_from_the_kept_scores_changes_only_the_thresholds(model, synthetic):
    import linewatch.vision

    assert linewatch.vision.recalibrate is recalibrate  # the library's own name for it
    before = _manifest(model)
    done = recalibrate(model, false_alarm_rate=0.2)
    after = _manifest(model)
    kept = before["calibration_scores"]
    expected = calibrate(np.array(kept["image"]), np.array(kept["peak"]), 0.2)
    assert after["calibration"] == expected.to_dict() == done.after.to_dict()
    assert done.before.to_dict() == before["calibration"] and done.source == "kept scores"
    assert expected.image_threshold < before["calibration"]["image_threshold"]  # a higher rate flags more
    assert after["calibration_history"][-1]["calibration"] == before["calibration"]
    assert after["calibration_scores"] == kept  # the same scores, still from training
    for key in set(before) - {"calibration", "calibration_history"}:
        assert after[key] == before[key], key
    # what the model predicts follows: verdicts at the new threshold, the learned state as it was
    det = load(model)
    assert det.calibration_ == expected
    images = [s.path for s in load_dataset(synthetic).test]
    for pred in det.predict(images):
        assert pred.is_anomalous == (pred.score >= expected.image_threshold)
    assert done.flagged_after == int((np.array(kept["image"]) >= expected.image_threshold).sum())


def test_good_images_of_today_set_the_thresholds_and_unreadable_ones_are_named(model, synthetic, tmp_path):
    good = sorted((synthetic / "test" / "good").iterdir())
    bad = tmp_path / "truncated.png"
    bad.write_bytes(good[0].read_bytes()[:60])
    told = []
    done = recalibrate(model, [*good, bad], 0.05, unreadable=lambda name, why: told.append((name, why)))
    assert [n for n, _ in told] == [str(bad)] and done.skipped == [told[0][1]]
    det = load(model)
    scores, peaks = zip(*((s, m.max()) for s, m, _z, _n in det.raw_scores(good)), strict=True)
    expected = calibrate(np.array(scores), np.array(peaks), 0.05)
    assert det.calibration_.to_dict() == pytest.approx(expected.to_dict(), rel=1e-5)
    kept = _manifest(model)["calibration_scores"]
    assert kept["source"] == "images" and kept["images"] == len(good) == done.images
    # the next rate change starts from these scores, not training's
    again = recalibrate(model, false_alarm_rate=0.1)
    assert again.after.image_threshold == pytest.approx(
        calibrate(np.array(scores), np.array(peaks), 0.1).image_threshold, rel=1e-5
    )
    assert [h["by"] for h in _manifest(model)["calibration_history"]] == ["images", "kept scores"]


def test_out_writes_a_copy_and_leaves_the_model_as_it_was(model, tmp_path):
    original = {p.name: p.read_bytes() for p in model.iterdir()}
    copy = tmp_path / "copy"
    done = recalibrate(model, false_alarm_rate=0.3, out=copy)
    assert done.model_dir == copy
    assert {p.name: p.read_bytes() for p in model.iterdir()} == original
    assert _manifest(copy)["calibration"]["false_alarm_rate"] == 0.3
    assert (copy / "model.safetensors").read_bytes() == original["model.safetensors"]
    assert load(copy).calibration_.false_alarm_rate == 0.3
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.png").write_bytes(b"x")
    with pytest.raises(ModelFileError, match="holds other files"):
        recalibrate(model, false_alarm_rate=0.3, out=photos)
    assert [p.name for p in photos.iterdir()] == ["a.png"]
    with pytest.raises(LinewatchError, match="cannot go inside the model"):
        recalibrate(model, false_alarm_rate=0.3, out=model / "copy")
    assert {p.name: p.read_bytes() for p in model.iterdir()} == original


def test_a_loaded_model_saved_again_keeps_its_scores(model, synthetic, tmp_path):
    from linewatch.vision.saving import save

    recalibrate(model, sorted((synthetic / "test" / "good").iterdir()), 0.05)
    kept = _manifest(model)["calibration_scores"]
    again = save(load(model), tmp_path / "again")
    assert _manifest(again)["calibration_scores"] == kept and kept["source"] == "images"
    assert recalibrate(again, false_alarm_rate=0.05).after == load(model).calibration_


def test_the_training_images_themselves_are_refused(model, synthetic):
    with pytest.raises(LinewatchError, match="trained on"):
        recalibrate(model, load_dataset(synthetic).train)


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"false_alarm_rate": 0}, "above 0 and below 0.5"),
        ({"false_alarm_rate": float("nan")}, "above 0 and below 0.5"),
        ({"false_alarm_rate": 0.7}, "above 0 and below 0.5"),
        ({"images": "few"}, "at least 5 good images"),
    ],
)
def test_refusals_change_nothing(model, synthetic, kwargs, says):
    if kwargs.get("images") == "few":
        kwargs = {"images": sorted((synthetic / "test" / "good").iterdir())[:3]}
    before = (model / "manifest.json").read_bytes()
    with pytest.raises(LinewatchError, match=says):
        recalibrate(model, **kwargs)
    assert (model / "manifest.json").read_bytes() == before


def test_a_model_saved_before_the_scores_were_kept_needs_images(model, synthetic):
    m = _manifest(model)
    del m["calibration_scores"]
    (model / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(LinewatchError, match="give a folder of good images"):
        recalibrate(model, false_alarm_rate=0.05)
    done = recalibrate(model, sorted((synthetic / "test" / "good").iterdir()), 0.05)  # the method's floor: 0
    assert done.after.false_alarm_rate == 0.05 and _manifest(model)["calibration_scores"]["floor"] == 0.0


def test_damaged_kept_scores_are_a_model_file_error(model):
    m = _manifest(model)
    m["calibration_scores"]["peak"] = m["calibration_scores"]["peak"][:-1]
    (model / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ModelFileError, match="calibration_scores are damaged"):
        recalibrate(model, false_alarm_rate=0.05)


def test_the_floor_and_the_history_are_bounded(model):
    m = _manifest(model)
    m["calibration_scores"]["floor"] = 1e6  # a method whose thresholds never go below a value (PaDiM's 1)
    (model / "manifest.json").write_text(json.dumps(m))
    for _ in range(HISTORY + 2):
        done = recalibrate(model, false_alarm_rate=0.05)
    assert done.after.image_threshold == done.after.pixel_threshold == 1e6
    assert len(_manifest(model)["calibration_history"]) == HISTORY


def test_a_long_record_is_thinned_evenly():
    n = MAX_KEPT * 3
    kept = kept_scores({"image": np.arange(n, dtype=float), "peak": np.arange(n, dtype=float)}, "images")
    assert len(kept["image"]) == MAX_KEPT and kept["images"] == n
    assert kept["image"][0] == 0 and kept["image"][-1] == n - 1
    assert kept_scores(None, "training") is None and kept_scores({"image": []}, "training") is None


def test_an_evaluation_at_the_old_threshold_is_called_stale(model):
    m = _manifest(model)
    m["metrics"] = {"threshold": m["calibration"]["image_threshold"], "image_auroc": 1.0}
    (model / "manifest.json").write_text(json.dumps(m))
    assert recalibrate(model, false_alarm_rate=0.3).stale_metrics
    m = _manifest(model)
    m["metrics"]["threshold"] = m["calibration"]["image_threshold"]
    (model / "manifest.json").write_text(json.dumps(m))
    assert not recalibrate(model).stale_metrics  # the same rate, the same scores: the same threshold


def test_the_command_line(model, synthetic, tmp_path, cli_here):
    r = cli_here("calibrate", model, "--false-alarm-rate", "0.2")
    assert r.exit_code == 0, r.stdout + r.stderr
    assert "of the" in r.stdout and "flagged" in r.stdout and "0.2" in r.stdout
    assert "good images held out at training" in r.stderr.replace("\n", " ")
    good = synthetic / "test" / "good"
    r = cli_here("calibrate", model, good, "--json", "-q")
    assert r.exit_code == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["source"] == "images" and d["after"]["false_alarm_rate"] == 0.2
    r = cli_here("calibrate", model, "--false-alarm-rate", "0.1")  # now from the images given above
    assert r.exit_code == 0 and "good images of its last calibration" in r.stderr.replace("\n", " ")
    assert d["images"] == len(list(good.iterdir()))
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    r = cli_here("calibrate", model, good, bad, "-q")
    assert r.exit_code == 2 and str(bad) in r.stderr and "could not be read" in r.stderr
    r = cli_here("calibrate", model, synthetic / "train" / "good")
    assert r.exit_code == 2 and "trained on" in r.stderr and "Traceback" not in r.stderr
    before = (model / "manifest.json").read_bytes()
    for folder, names in ((synthetic, "train/, test/"), (synthetic / "test", "good/")):
        r = cli_here("calibrate", model, folder)  # defects among them would raise the thresholds
        assert r.exit_code == 2 and "holds labelled images" in r.stderr and names in r.stderr, r.stderr
        assert str(synthetic / "test" / "good") in r.stderr.replace("\n", "")
    assert (model / "manifest.json").read_bytes() == before
    m = _manifest(model)
    m["calibration"] = None  # trained without held-out images: no thresholds until now
    (model / "manifest.json").write_text(json.dumps(m))
    r = cli_here("calibrate", model, good)
    assert r.exit_code == 0 and "(the model had none)" in r.stderr and "history" not in r.stderr, r.stderr
    assert load(model).calibration_ is not None
    r = cli_here("calibrate", tmp_path / "nowhere")
    assert r.exit_code == 2 and "model not found" in r.stderr


def test_going_back_restores_the_thresholds_and_the_good_scores_they_came_from(model, synthetic):
    """A calibration on today's images, then another rate; going back twice returns to training's thresholds and
    scores, one step at a time, and a third time says there is nothing left to go back to."""
    import linewatch.vision

    assert linewatch.vision.restore_calibration is restore_calibration
    trained = _manifest(model)
    good = sorted((synthetic / "test" / "good").iterdir())
    recalibrate(model, good, 0.05)
    on_images = _manifest(model)
    recalibrate(model, false_alarm_rate=0.2)
    at_rate = _manifest(model)

    back = restore_calibration(model)
    m = _manifest(model)
    assert m["calibration"] == on_images["calibration"] == back.after.to_dict()
    assert back.before.to_dict() == at_rate["calibration"] and back.source == "history" and back.scores_restored
    assert m["calibration_scores"] == on_images["calibration_scores"]  # the rate alone changed: the same scores
    assert back.made == on_images["calibration_history"][-1]["replaced"]  # when the images' calibration was made
    assert len(m["calibration_history"]) == 1 and load(model).calibration_.to_dict() == on_images["calibration"]
    kept = np.array(on_images["calibration_scores"]["image"])
    assert back.images == len(good) and back.flagged_after == int((kept >= back.after.image_threshold).sum())

    again = restore_calibration(model)
    m = _manifest(model)
    assert m["calibration"] == trained["calibration"] and m["calibration_scores"] == trained["calibration_scores"]
    assert again.scores_from == "training" and again.made is None and m["calibration_history"] == []
    for key in set(trained) - {"calibration_history"}:
        assert m[key] == trained[key], key
    # another rate now starts from training's held-out scores, as before any recalibration
    t = trained["calibration_scores"]
    expected = calibrate(np.array(t["image"]), np.array(t["peak"]), 0.1)
    before = (model / "manifest.json").read_bytes()
    with pytest.raises(LinewatchError, match="keeps no earlier calibration"):
        restore_calibration(model)
    assert (model / "manifest.json").read_bytes() == before
    assert recalibrate(model, false_alarm_rate=0.1).after == expected


def test_the_history_keeps_the_scores_of_its_newest_few(model, synthetic):
    """Each calibration on images keeps the scores it replaces in the history, the newest few only: going back past
    them restores the thresholds and says the scores did not come back."""
    trained = _manifest(model)
    good = sorted((synthetic / "test" / "good").iterdir())
    for k in range(HISTORY_SCORES + 1):
        recalibrate(model, good[k % 2 :], 0.05 + 0.01 * k)
    history = _manifest(model)["calibration_history"]
    assert ["scores" in h for h in history] == [False] + [True] * HISTORY_SCORES
    latest = _manifest(model)["calibration_scores"]
    for _ in range(HISTORY_SCORES):
        assert restore_calibration(model).scores_restored
    oldest = restore_calibration(model)
    m = _manifest(model)
    assert not oldest.scores_restored and m["calibration"] == trained["calibration"]
    assert m["calibration_scores"]["images"] in (len(good), len(good) - 1)  # a later calibration's, not training's
    assert m["calibration_scores"] != trained["calibration_scores"] and latest["source"] == "images"


def test_the_command_line_goes_back(model, synthetic, tmp_path, cli_here):
    trained = _manifest(model)
    r = cli_here("calibrate", model, "--undo")
    assert r.exit_code == 2 and "keeps no earlier calibration" in r.stderr and "Traceback" not in r.stderr
    assert cli_here("calibrate", model, "--false-alarm-rate", "0.2").exit_code == 0
    for extra in ([synthetic / "test" / "good"], ["--false-alarm-rate", "0.1"]):
        r = cli_here("calibrate", model, *extra, "--undo")
        assert r.exit_code == 2 and "give it no images" in r.stderr, r.stderr
    copy = tmp_path / "copy"
    r = cli_here("calibrate", model, "--undo", "-o", copy, "--json")
    assert r.exit_code == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["source"] == "history" and d["model"] == str(copy) and d["after"] == trained["calibration"]
    assert _manifest(copy)["calibration"] == trained["calibration"]
    assert _manifest(model)["calibration"]["false_alarm_rate"] == 0.2  # -o: the model itself as it was
    r = cli_here("calibrate", model, "--undo")
    assert r.exit_code == 0 and "back to the thresholds" in r.stderr.replace("\n", " "), r.stderr
    assert "flagged" in r.stdout and _manifest(model)["calibration"] == trained["calibration"]


def test_an_exported_model_is_calibrated_through_its_export_to_the_same_thresholds(
    model, synthetic, tmp_path, monkeypatch
):
    from linewatch.vision import runtime
    from linewatch.vision.export import export_onnx

    good = sorted((synthetic / "test" / "good").iterdir())
    by_torch = recalibrate(model, good, 0.05, out=tmp_path / "torch").after
    export_onnx(model)
    opened = []
    real = runtime.open_model
    monkeypatch.setattr(runtime, "open_model", lambda d, prefer_onnx=True: opened.append(real(d)) or opened[-1])
    by_onnx = recalibrate(model, good, 0.05).after
    assert [type(s).__name__ for s in opened] == ["OnnxModel"]
    assert by_onnx.to_dict() == pytest.approx(by_torch.to_dict(), rel=1e-4)
    assert runtime.OnnxModel(model).calibration_ == by_onnx  # the export reads the manifest's new thresholds


@pytest.fixture
def parts(tmp_path):
    """A category with 72 good test photos: 36 to calibrate a model on, 36 more as a station's recent parts, and the
    same 36 in a brighter light."""
    from PIL import Image, ImageEnhance

    from linewatch.vision.synthetic import make_dataset

    root = make_dataset(tmp_path / "parts", n_train=24, n_test_good=72, n_test_defect=2, seed=3)
    good = sorted((root / "test" / "good").iterdir())
    out = {"today": tmp_path / "today", "recent": tmp_path / "recent", "brighter": tmp_path / "brighter"}
    for d in out.values():
        d.mkdir()
    for i, p in enumerate(good):
        if i < 36:
            shutil.copy(p, out["today"])
        else:
            shutil.copy(p, out["recent"])
            ImageEnhance.Brightness(Image.open(p)).enhance(1.4).save(out["brighter"] / p.name)
    return out


def test_the_drift_watch_of_recent_photos_against_the_good_scores_kept(model, parts, synthetic):
    from linewatch.vision import watch_drift

    recalibrate(model, sorted(parts["today"].iterdir()))  # the reference: 36 good scores of today
    same = watch_drift(model, sorted(parts["recent"].iterdir()))
    assert same.level == "ok" and same.recent == 36 and same.reference == 36 and same.promised_rate is not None
    brighter = watch_drift(model, sorted(parts["brighter"].iterdir()))
    assert brighter.level in ("watch", "drift") and brighter.shift_auroc > 0.75, brighter
    assert "set the thresholds again" in brighter.reason
    few = watch_drift(model, sorted(parts["recent"].iterdir())[:10])
    assert few.level == "unknown" and "too few" in few.reason
    with pytest.raises(LinewatchError, match="trained on"):
        watch_drift(model, load_dataset(synthetic).train)


def test_the_drift_command(model, parts, tmp_path, cli_here):
    r = cli_here("calibrate", model, parts["today"], "-q")
    assert r.exit_code == 0, r.stderr
    r = cli_here("drift", model, parts["brighter"], "--json", "-q")
    assert r.exit_code == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["level"] in ("watch", "drift") and d["recent"] == 36 and d["shift_auroc"] > 0.75
    # the photos themselves, beside their scores: 1.4 times the light (clipped at white)
    assert d["brightness_level"] == "drift" and d["brightness_change"] > 0.2 and d["look_auroc"] is not None
    assert len(d["farthest"]) == 5 and all(f["name"].endswith(".png") and f["distance"] >= 0 for f in d["farthest"])
    table = cli_here("drift", model, parts["brighter"], "-q")
    assert "brightness change of the median" in table.stdout and "look AUROC" in table.stdout
    # a scheduled check fails at the level it is told to
    level = d["level"]
    assert cli_here("drift", model, parts["brighter"], "-q", "--fail-on", "watch").exit_code == 1
    assert cli_here("drift", model, parts["brighter"], "-q", "--fail-on", "drift").exit_code == (level == "drift")
    assert cli_here("drift", model, parts["recent"], "-q", "--fail-on", "watch").exit_code == 0
    assert cli_here("drift", model, parts["brighter"], "-q", "--fail-on", "always").exit_code == 2
    (parts["recent"] / "broken.png").write_bytes(b"not a png")
    r = cli_here("drift", model, parts["recent"], "-q")
    assert r.exit_code == 2  # one image could not be read: named, the rest compared
    text = " ".join((r.stdout + r.stderr).split())
    assert "broken.png" in text and "ok" in r.stdout and "look as when the thresholds were set" in text
    broken = tmp_path / "all-broken"
    broken.mkdir()
    for i in range(3):
        (broken / f"{i}.png").write_bytes(b"not a png")
    r = cli_here("drift", model, broken, "-q")
    assert r.exit_code == 2 and "none of the 3 images can be read" in " ".join(r.stderr.split())
    assert r.stdout == "" and "Traceback" not in r.stderr
    old = tmp_path / "old"
    shutil.copytree(model, old)
    m = _manifest(old)
    del m["calibration_scores"]
    (old / "manifest.json").write_text(json.dumps(m))
    r = cli_here("drift", old, parts["recent"], "-q")
    assert r.exit_code == 2 and "keeps no held-out good scores" in " ".join(r.stderr.split())
    assert "Traceback" not in r.stderr
