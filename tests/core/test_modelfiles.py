"""Files a model directory holds are replaced whole or not at all."""

import json

import pytest

from linewatch.core.modelfiles import atomic_file, write_json_atomic


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "manifest.json"
    write_json_atomic(target, {"v": 1})
    with pytest.raises(RuntimeError), atomic_file(target) as f:
        f.write(b"half of a new fi")
        raise RuntimeError("disk full")
    assert json.loads(target.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]


def test_a_finished_write_replaces_the_file(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with atomic_file(target) as f:
        f.write(b"new")
        assert target.read_bytes() == b"old"  # not visible until the block ends
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def _model(folder, text="old"):
    folder.mkdir()
    (folder / "manifest.json").write_text('{"format_version": 1}')
    (folder / "weights.bin").write_text(text)
    return folder


def test_a_model_replaces_an_earlier_model_or_an_empty_folder(tmp_path):
    from linewatch.core.modelfiles import replace_dir, staging_dir

    for target in (_model(tmp_path / "earlier"), tmp_path / "empty", tmp_path / "new"):
        if target.name == "empty":
            target.mkdir()
        stage = staging_dir(target)
        (stage / "manifest.json").write_text('{"format_version": 2}')
        replace_dir(stage, target)
        assert sorted(p.name for p in target.iterdir()) == ["manifest.json"]
        assert "2" in (target / "manifest.json").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["earlier", "empty", "new"]  # no staging or old copy left


def test_a_folder_of_other_things_is_never_replaced(tmp_path, monkeypatch):
    from linewatch.core.modelfiles import check_target, replace_dir, staging_dir
    from linewatch.errors import ModelFileError

    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "part.png").write_bytes(b"a user's photo")
    with pytest.raises(ModelFileError, match="holds other files and is not a linewatch model: nothing was written"):
        staging_dir(photos)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos"]  # refused before a staging folder was made
    stage = tmp_path / "stage"
    stage.mkdir()
    with pytest.raises(ModelFileError, match="not a linewatch model"):
        replace_dir(stage, photos)  # the last guard too, should a caller have staged without asking
    assert (photos / "part.png").read_bytes() == b"a user's photo"
    # what else decides that a folder is ours: a report's or an index's own files
    assert check_target(photos, ours=lambda d: (d / "part.png").is_file(), what="report") == photos
    with pytest.raises(ModelFileError, match="is not a linewatch report"):
        check_target(photos, ours=lambda d: False, what="report")


def test_the_current_folder_and_a_folder_holding_it_are_refused(tmp_path, monkeypatch):
    from linewatch.core.modelfiles import check_target
    from linewatch.errors import ModelFileError

    here = _model(tmp_path / "model")  # even a model: replacing it would pull the folder from under the process
    monkeypatch.chdir(here)
    for given in ("", ".", str(here), "..", str(tmp_path)):
        with pytest.raises(ModelFileError, match="current folder or holds it"):
            check_target(given)
    with pytest.raises(ModelFileError, match="a file is in the way"):
        check_target("weights.bin")
    assert check_target("sub") == here / "sub"


def test_a_manifest_names_only_files_of_its_own_folder(tmp_path):
    from linewatch.core.modelfiles import add_file_entry, checked_file
    from linewatch.errors import ModelFileError

    model = _model(tmp_path / "model")
    manifest: dict = {}
    add_file_entry(manifest, "weights", model / "weights.bin")
    assert checked_file(model, manifest, "weights") == model / "weights.bin"
    (tmp_path / "elsewhere.bin").write_text("old")
    for name in ("../elsewhere.bin", str(tmp_path / "elsewhere.bin"), "..", ""):
        entry = {"weights": {**manifest["files"]["weights"], "name": name}}
        with pytest.raises(ModelFileError, match="is not a file of the model's folder"):
            checked_file(model, {"files": entry}, "weights")
    for files in ("x", {"weights": "x"}, {"weights": {"name": "weights.bin"}}, {"weights": {"sha256": "ab"}}):
        with pytest.raises(ModelFileError, match="lists no weights file|needs a file name and its sha256"):
            checked_file(model, {"files": files}, "weights")


@pytest.mark.parametrize("version", ["1", True, 0, -2, 1.0, None])
def test_a_format_version_that_is_no_number_is_damage_not_a_newer_format(tmp_path, version):
    from linewatch.core.modelfiles import read_manifest
    from linewatch.errors import ModelFileError

    model = _model(tmp_path / "model")
    (model / "manifest.json").write_text(json.dumps({"engine": "sensors", "format_version": version, "files": {}}))
    with pytest.raises(ModelFileError, match="is not a format number .* it is damaged"):
        read_manifest(model, engine="sensors", format_version=2)
