import json
import shutil
import subprocess
import sys
import zipfile

import pytest

LW = [sys.executable, "-m", "linewatch.cli"]


def run(*args, check=True):
    r = subprocess.run([*LW, *map(str, args)], capture_output=True, text=True, timeout=600)
    if check:
        assert r.returncode == 0, r.stderr[-2000:]
    return r


def test_train_evaluate_predict_export(synthetic, tmp_path):
    model = tmp_path / "model"
    trained = run("train", synthetic, "--out", model, "--image-size", "96", "-q")
    assert (model / "manifest.json").is_file()
    check = json.loads((model / "manifest.json").read_text())["training"]["self_check"]
    assert f"image AUROC {check['image_auroc']:.3f}" in " ".join(trained.stderr.split()) and check["painted"] > 0
    m = json.loads(run("evaluate", model, synthetic, "--json", "-q").stdout.strip().splitlines()[-1])
    for key in ("image_auroc", "pixel_auroc", "aupro", "f1_max", "images", "ms_per_image"):
        assert key in m
    assert m["images"] == 18 and m["image_auroc"] > 0.9
    assert json.loads((model / "manifest.json").read_text())["metrics"]["image_auroc"] == m["image_auroc"]
    heat = tmp_path / "heat"
    out = run("predict", model, synthetic / "test" / "spot", "--out", heat, "--json").stdout
    recs = [json.loads(line) for line in out.splitlines()]
    assert len(recs) == 4
    for rec in recs:
        assert {"path", "score", "normalized_score", "verdict", "regions", "heatmap"} <= set(rec)
    assert len(list(heat.glob("*.png"))) == 4
    run("export", model, "--format", "onnx", "--bundle", tmp_path / "bundle.zip")
    assert (model / "model.onnx").is_file()
    onnx_recs = [
        json.loads(x) for x in run("predict", model, synthetic / "test" / "spot", "--json").stdout.split("\n") if x
    ]
    for a, b in zip(recs, onnx_recs, strict=True):
        assert abs(a["score"] - b["score"]) < 1e-3 * max(1, abs(a["score"]))
    with zipfile.ZipFile(tmp_path / "bundle.zip") as z:
        z.extractall(tmp_path / "unzipped")
    bundled = [
        json.loads(x)
        for x in run("predict", tmp_path / "unzipped", synthetic / "test" / "spot", "--json").stdout.split("\n")
        if x
    ]
    assert [b["score"] for b in bundled] == [b["score"] for b in onnx_recs]


def test_a_true_or_false_parameter_turns_off_with_no(synthetic, tmp_path, cli_here):
    model = tmp_path / "model"
    trained = cli_here("train", synthetic, "--out", model, "--image-size", "64", "--no-self-check", "-q")
    assert trained.exit_code == 0, trained.stderr
    assert "self_check" not in json.loads((model / "manifest.json").read_text())["training"]
    assert "self-check" not in trained.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["train", "{tmp}/nope", "--out", "{tmp}/m"],
        ["train", "{tmp}/empty", "--out", "{tmp}/m"],
        ["train", "{tmp}/corrupt", "--out", "{tmp}/m"],
        ["predict", "{tmp}/notamodel", "{tmp}/corrupt/broken.png"],
        ["predict", "{tmp}/nope", "{tmp}/corrupt/broken.png"],
        ["evaluate", "{tmp}/notamodel", "{tmp}/empty"],
        ["train", "{tmp}/empty", "--out", "{tmp}/m", "--method", "nosuch"],
        ["train", "{tmp}/corrupt", "--out", "{tmp}/m", "--image-size", "5"],
        ["export", "{tmp}/nope", "--format", "onnx"],
        ["export", "{tmp}/notamodel", "--bundle", "{tmp}/nope/b.zip"],
        ["export", "{tmp}/notamodel", "--bundle", "{tmp}/empty"],
    ],
)
def test_user_errors_exit_2_without_traceback(tmp_path, args, cli_here):
    (tmp_path / "empty").mkdir()
    (tmp_path / "corrupt").mkdir()
    for i in range(6):
        (tmp_path / "corrupt" / f"broken{i if i else ''}.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    (tmp_path / "notamodel").mkdir()
    (tmp_path / "notamodel" / "manifest.json").write_text("{not json")
    r = cli_here(*[a.format(tmp=tmp_path) for a in args])
    assert r.exit_code == 2 and "error" in r.stderr.lower(), r.stderr  # told, not raised (an uncaught error exits 1)


@pytest.mark.parametrize(
    "args",
    [
        ["predict", "{model}", "{image}", "--out", "{tmp}/afile"],
        ["predict", "{model}", "{image}", "--out", "{tmp}/afile/heatmaps"],
        ["demo", "--dir", "{tmp}/afile", "-q"],
    ],
)
def test_a_file_in_the_way_of_an_output_folder_is_a_user_error(trained, synthetic, tmp_path, args, cli_here):
    _, model = trained
    (tmp_path / "afile").write_text("not a folder")
    image = synthetic / "test" / "good" / "000.png"
    r = cli_here(*[a.format(tmp=tmp_path, model=model, image=image) for a in args])
    assert r.exit_code == 2
    assert "afile" in r.stderr and "a file is in the way" in r.stderr and "internal error" not in r.stderr


def test_train_never_replaces_a_folder_of_photos(synthetic, tmp_path, cli_here):
    photos = tmp_path / "photos"
    shutil.copytree(synthetic / "test" / "good", photos)
    before = sorted(p.name for p in photos.iterdir())
    r = cli_here("train", synthetic, "--out", photos)
    assert r.exit_code == 2
    assert "holds other files and is not a linewatch model: nothing was written" in r.stderr
    assert "extracting features" not in r.stderr  # refused before the training, not after it
    assert sorted(p.name for p in photos.iterdir()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos"]


def test_path_problems_are_told_in_a_users_words():
    import errno

    from linewatch.console import path_problem

    assert path_problem(OSError(errno.ENOSPC, "No space left on device", "/data/m")) == (
        "cannot use /data/m: no space left on the device"
    )
    assert path_problem(PermissionError(errno.EACCES, "Permission denied", "/root/x")).endswith("permission denied")
    assert path_problem(OSError(errno.EIO, "Input/output error", "/mnt/c")) == "cannot use /mnt/c: Input/output error"
    assert path_problem(OSError(errno.ECONNREFUSED, "Connection refused")) is None  # no path: not the user's to fix


def test_the_onnx_engine_without_an_export_says_to_export(trained, synthetic, tmp_path, cli_here):
    _, model = trained  # saved, never exported
    image = synthetic / "test" / "good" / "000.png"
    for args in (["predict", model, image], ["evaluate", model, synthetic, "--no-store"]):
        r = cli_here(*args, "--engine", "onnx")
        assert r.exit_code == 2
        assert f"{model} has no ONNX export: run `linewatch export {model}` first" in " ".join(r.stderr.split())


def test_predict_on_a_corrupt_image_is_a_clear_error(trained, tmp_path, cli_here):
    _, model = trained
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8garbage")
    r = cli_here("predict", model, bad, "--json")
    assert r.exit_code == 2 and "bad.jpg" in r.stderr


@pytest.mark.parametrize("engine", ["torch", "onnx"])
def test_predict_scores_the_readable_images_and_names_the_others(trained, synthetic, tmp_path, engine, cli_here):
    import shutil
    from pathlib import Path

    _, model = trained
    if engine == "onnx":  # the session's model is shared: export a copy
        model = shutil.copytree(model, tmp_path / "model")
        assert cli_here("export", model).exit_code == 0
    day = tmp_path / "day"
    day.mkdir()
    good = sorted((synthetic / "test" / "good").glob("*.png"))
    names = [f"{i:02d}.png" for i in range(12)]
    for name, src in zip(names, good * 3, strict=False):
        shutil.copy(src, day / name)
    data = good[0].read_bytes()
    (day / "05b.png").write_bytes(data[: len(data) // 2])  # a camera's write cut short
    (day / "09b.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    r = cli_here("predict", model, day, "--json", "--engine", engine)
    assert r.exit_code == 2, r.stderr
    assert [Path(json.loads(x)["path"]).name for x in r.stdout.splitlines() if x] == names  # all the others, in order
    assert "05b.png" in r.stderr and "09b.png" in r.stderr and "2 of 14 images could not be read" in r.stderr
    table = cli_here("predict", model, day, "--engine", engine)
    assert table.exit_code == 2 and table.stdout.count("unreadable") == 2 and "11.png" in table.stdout


def test_help_lists_the_verbs(cli_here):
    r = cli_here("--help")
    assert r.exit_code == 0
    out = r.stdout
    for verb in ("train", "evaluate", "calibrate", "drift", "predict", "export", "demo"):
        assert verb in out


def test_serve_on_a_port_in_use_is_a_user_error_before_anything_starts(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = run("serve", "--port", port, "--data-dir", tmp_path / "data", check=False)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"cannot listen on 127.0.0.1:{port}: the port is in use" in r.stderr and "serving on" not in r.stderr
    assert not (tmp_path / "data").exists()  # nothing was created for a service that could not start


def test_copies_in_hidden_and_system_folders_are_not_training_images(synthetic, tmp_path):
    """A Synology NAS keeps thumbnails in @eaDir beside every photo, macOS adds ._ files and __MACOSX folders, viewers
    keep .thumbnails: none of them are photos of the part, and none become training or test images (or a defect
    type named after their folder)."""
    from linewatch.vision.datasets import load_dataset

    root = tmp_path / "cat"
    shutil.copytree(synthetic, root)
    good = sorted((root / "train" / "good").glob("*.png"))
    for folder in ("@eaDir/000.png", ".thumbnails", "__MACOSX"):
        (root / "train" / "good" / folder).mkdir(parents=True)
        shutil.copy(good[0], root / "train" / "good" / folder / "thumb.png")
    (root / "train" / "good" / "._000.png").write_bytes(b"\x00\x05\x16\x07 resource fork")
    (root / "test" / "@eaDir").mkdir()
    shutil.copy(good[0], root / "test" / "@eaDir" / "thumb.png")
    ds = load_dataset(root)
    assert ds.train == good
    assert {s.label for s in ds.test} == {s.label for s in load_dataset(synthetic).test}
    flat = tmp_path / "flat"
    (flat / ".cache").mkdir(parents=True)
    shutil.copy(good[0], flat / "a.png")
    shutil.copy(good[1], flat / ".cache" / "b.png")
    assert load_dataset(flat).train == [flat / "a.png"]


def test_a_model_without_a_threshold_prints_valid_json(synthetic, tmp_path, cli_here):
    model = tmp_path / "m"
    r = cli_here(
        "train", synthetic, "--out", model, "--method", "padim", "--holdout", "0", "--image-size", "64",
        "--no-self-check", "-q",
    )  # fmt: skip
    assert "no threshold (no held-out good images)" in r.stderr, r.stderr
    r = cli_here("predict", model, synthetic / "test" / "good" / "000.png", "--json")
    assert r.exit_code == 0, r.stderr

    def no_nan(name):
        raise AssertionError(f"{name} is not JSON")

    rec = json.loads(r.stdout.splitlines()[0], parse_constant=no_nan)
    assert rec["normalized_score"] is None and rec["verdict"] == "good"
    table = cli_here("predict", model, synthetic / "test" / "good" / "000.png")
    assert table.exit_code == 0, table.stderr
    assert "nan" not in table.stdout.lower()


def test_export_never_writes_over_the_models_own_files_or_a_users(trained, tmp_path, cli_here):
    _, source = trained
    model = tmp_path / "model"
    shutil.copytree(source, model)
    (tmp_path / "notes.txt").write_text("a user's notes")
    before = {p.name: p.read_bytes() for p in [*model.iterdir(), tmp_path / "notes.txt"]}
    for args in (
        ["--out", model / "model.safetensors"],
        ["--out", model / "manifest.json"],
        ["--out", tmp_path / "notes.txt"],
        ["--out", tmp_path],
        ["--out", ""],
        ["--bundle", model / "manifest.json"],
        ["--bundle", model / "model.safetensors"],
        ["--bundle", tmp_path / "notes.txt"],
    ):
        r = cli_here("export", model, *args)  # in this process: no interpreter start and torch import per refusal
        assert r.exit_code == 2 and "internal error" not in r.stderr, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert {p.name: p.read_bytes() for p in [*model.iterdir(), tmp_path / "notes.txt"]} == before
    for args in (["--bundle", "m.zip"], ["--bundle", "m.zip"], ["--out", "elsewhere.onnx"]):  # a zip, the same again
        r = cli_here("export", model, args[0], tmp_path / args[1])
        assert r.exit_code == 0, r.stderr
    assert zipfile.is_zipfile(tmp_path / "m.zip") and (tmp_path / "elsewhere.onnx").stat().st_size > 0


def test_predict_never_writes_a_heatmap_over_an_image_it_scores(synthetic, trained, tmp_path, cli_here):
    _, model = trained
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(synthetic / "test" / "good" / "000.png", folder / "p.png")
    shutil.copy(synthetic / "test" / "good" / "001.png", folder / "p_heatmap.png")  # an image named like a heatmap
    before = (folder / "p_heatmap.png").read_bytes()
    r = cli_here("predict", model, folder, "--out", folder)
    assert r.exit_code == 2 and "one of the images scored: choose another --out folder" in r.stderr, r.stderr
    assert (folder / "p_heatmap.png").read_bytes() == before


@pytest.mark.parametrize(
    "calibration, says",
    [
        ([1, 2], "calibration lacks"),
        ({"image_threshold": "abc"}, "calibration lacks"),
        ("full", "image_threshold is 'abc', not a finite number"),
        ("nan", "pixel_threshold is nan, not a finite number"),
        ("scale", "image_scale is -1.0: out of its range"),
    ],
)
def test_a_damaged_calibration_is_refused_when_the_model_loads(trained, tmp_path, calibration, says, cli_here):
    _, source = trained
    model = tmp_path / "model"
    shutil.copytree(source, model)
    manifest = json.loads((model / "manifest.json").read_text())
    good = manifest["calibration"]
    manifest["calibration"] = (
        {
            "full": {**good, "image_threshold": "abc"},
            "nan": {**good, "pixel_threshold": float("nan")},
            "scale": {**good, "image_scale": -1.0},
        }.get(calibration, calibration)
        if isinstance(calibration, str)
        else calibration
    )
    (model / "manifest.json").write_text(json.dumps(manifest))
    r = cli_here("predict", model, source)  # any path: the model is refused first
    assert r.exit_code == 2 and says in r.stderr and "internal error" not in r.stderr, r.stderr


def test_the_table_names_each_image_whole_on_a_narrow_terminal(trained, synthetic, tmp_path, cli_here, monkeypatch):
    """A table names images relative to the folder they share (a line above it names the folder), so a narrow terminal
    cuts off no file name; a name with [brackets] is shown as it is, not read as Rich markup."""
    from linewatch.console import out

    _, model = trained
    day = tmp_path / "line-3-station-with-a-long-name" / "camera-above-the-conveyor" / "2026-12-06"
    day.mkdir(parents=True)
    spot = sorted((synthetic / "test" / "spot").glob("*.png"))
    names = ["[cam1] part 7.png", "part [b]8.png", "part-0009-night.png"]
    for name, src in zip(names, spot, strict=False):
        shutil.copy(src, day / name)
    monkeypatch.setattr(out, "width", 72)
    r = cli_here("predict", model, day)
    assert r.exit_code == 0, r.stdout
    for name in names:
        assert name in r.stdout, r.stdout
    assert "…" not in r.stdout and "conveyor/2026-12-06" in r.stdout  # the folder, above the table


def test_every_out_option_is_also_dash_o():
    """`-o` works wherever `--out` does: training, sensors, maintenance, search, export, predict, schedule, twin."""
    import typer

    from linewatch.cli import app

    def commands(cmd, path=()):
        if hasattr(cmd, "commands"):  # a group (typer's own click)
            for name, sub in cmd.commands.items():
                yield from commands(sub, (*path, name))
        else:
            yield path, cmd

    found = {" ".join(p): c for p, c in commands(typer.main.get_command(app))}
    outs = {name: p.opts for name, c in found.items() for p in c.params if "--out" in p.opts}
    assert {"train", "predict", "export", "sensors fit", "maintenance fit", "schedule solve"} <= set(outs), outs
    assert all("-o" in opts for opts in outs.values()), outs


def test_a_model_folder_with_brackets_is_named_as_it_is(synthetic, tmp_path, cli_here):
    """'models [v2]': Rich read '[v2]' as markup and the training's last line named 'models /m'."""
    model = tmp_path / "models [v2]" / "m"
    r = cli_here("train", synthetic, "-o", model, "--image-size", "64", "--method", "patchcore", "-q")
    assert r.exit_code == 0, r.stderr
    assert f"-> {model}" in " ".join(r.stderr.split()), r.stderr
