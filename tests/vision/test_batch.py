"""``linewatch batch``: an archive scored into JSON lines, resumed after an interruption, here or on Ray."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("torch")

from linewatch.errors import LinewatchError  # noqa: E402
from linewatch.vision.batch import done_paths, score_archive  # noqa: E402


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def archive(synthetic, tmp_path_factory) -> list[Path]:
    """The synthetic set's test images in two dated folders, and one damaged file among them."""
    root = tmp_path_factory.mktemp("archive")
    images = sorted((Path(synthetic) / "test").glob("*/*.png"))
    for i, p in enumerate(images):
        day = root / ("2026-12-01" if i % 2 else "2026-12-02")
        day.mkdir(exist_ok=True)
        shutil.copy(p, day / f"{p.parent.name}_{p.name}")
    (root / "2026-12-02" / "damaged.png").write_bytes(b"\x89PNG\r\n\x1a\n not a whole picture")
    from linewatch.vision.datasets import expand_inputs

    return expand_inputs([root])


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory) -> Path:
    from linewatch.vision.export import export_onnx

    _, model_dir = trained
    copy = tmp_path_factory.mktemp("exported") / "model"
    shutil.copytree(model_dir, copy)
    export_onnx(copy)
    return copy


def test_an_archive_is_scored_line_by_line_and_an_interrupted_run_resumes(trained, archive, tmp_path):
    from linewatch.vision.runtime import open_model

    _, model_dir = trained
    out = tmp_path / "results.jsonl"
    first = score_archive(model_dir, archive[:7], out)
    assert (first.scored, first.unreadable, first.already) == (7, 0, 0)
    # killed while writing a line: the cut line is dropped, the rest is kept and not scored again
    with open(out, "a") as f:
        f.write('{"path": "' + str(archive[7]) + '", "sco')
    assert len(done_paths(out)) == 7 and out.read_text().endswith("}\n")
    with pytest.raises(LinewatchError, match="--resume"):
        score_archive(model_dir, archive, out)
    seen = []
    rest = score_archive(model_dir, archive, out, resume=True, progress=lambda *a: seen.append(a))
    assert rest.already == 7 and rest.scored + rest.unreadable == len(archive) - 7 and rest.unreadable == 1
    assert seen[-1] == ("score", len(archive) - 7, len(archive) - 7)
    lines = _lines(out)
    assert sorted(x["path"] for x in lines) == sorted(map(str, archive))  # each image once
    damaged = [x for x in lines if "error" in x]
    assert [Path(x["path"]).name for x in damaged] == ["damaged.png"] and damaged[0]["error"]
    # the same figures as scoring the images one call at a time
    want = {str(p.path): p for p in open_model(model_dir).predict([x for x in archive if x.name != "damaged.png"])}
    for x in lines:
        if "error" not in x:
            assert x["score"] == pytest.approx(want[x["path"]].score, rel=1e-5, abs=1e-6)
            assert x["verdict"] == want[x["path"]].verdict and set(x) >= {"normalized_score", "regions"}
    again = score_archive(model_dir, archive, out, resume=True)  # nothing left to do
    assert (again.scored, again.already) == (0, len(archive)) and len(_lines(out)) == len(archive)


def test_what_a_batch_refuses(trained, archive, tmp_path):
    _, model_dir = trained
    other = tmp_path / "notes.jsonl"
    other.write_text("a user's notes\nmore\n")
    with pytest.raises(LinewatchError, match="not a batch output"):
        score_archive(model_dir, archive, other, resume=True)
    assert other.read_text() == "a user's notes\nmore\n"
    with pytest.raises(LinewatchError, match="not a model folder"):
        score_archive(tmp_path, archive, tmp_path / "x.jsonl")
    with pytest.raises(LinewatchError, match="a folder"):
        score_archive(model_dir, archive, tmp_path, resume=True)
    with pytest.raises(LinewatchError, match="at least 1"):
        score_archive(model_dir, archive, tmp_path / "y.jsonl", workers=0)


def test_ray_actors_score_the_same_as_this_machine(exported, archive, tmp_path):
    pytest.importorskip("ray")
    here = score_archive(exported, archive, tmp_path / "here.jsonl")
    on_ray = score_archive(exported, archive, tmp_path / "ray.jsonl", ray_address="local", workers=2, shard=4)
    assert on_ray.workers == 2 and on_ray.where == "Ray (local)"
    assert (on_ray.scored, on_ray.unreadable) == (here.scored, here.unreadable)
    a = {x["path"]: x for x in _lines(tmp_path / "here.jsonl")}
    b = {x["path"]: x for x in _lines(tmp_path / "ray.jsonl")}
    assert a.keys() == b.keys()
    for k, x in a.items():
        if "error" in x:
            assert "error" in b[k]
        else:
            assert b[k]["score"] == pytest.approx(x["score"], rel=1e-5) and b[k]["verdict"] == x["verdict"]


def test_the_command_line(cli_here, trained, archive, tmp_path):
    _, model_dir = trained
    folder = archive[0].parent.parent
    out = tmp_path / "r.jsonl"
    r = cli_here("batch", str(model_dir), str(folder), "-o", str(out), "-q")
    assert r.exit_code == 0, r.output
    assert f"scored {len(archive) - 1} images (" in r.stderr and "1 unreadable" in r.stderr
    assert len(_lines(out)) == len(archive)
    r = cli_here("batch", str(model_dir), str(folder), "-o", str(out), "-q")
    assert r.exit_code == 2 and "--resume" in r.stderr
    r = cli_here("batch", str(model_dir), str(folder), "-o", str(out), "-q", "--resume")
    assert r.exit_code == 0 and f"{len(archive)} done by an earlier run" in r.stderr


def test_a_ray_head_nobody_answers_at_is_said_before_ray_starts(exported, archive, tmp_path, monkeypatch):
    """Ray's client would retry an unanswered ray:// address for about 30 s, printing its own warnings."""
    ray = pytest.importorskip("ray")
    import socket

    def no_start(*args, **kwargs):
        raise AssertionError("ray.init was called for an address nobody answers at")

    monkeypatch.setattr(ray, "init", no_start)
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "r.jsonl"
    with pytest.raises(LinewatchError, match=rf"no Ray cluster at ray://127\.0\.0\.1:{port}: cannot connect"):
        score_archive(exported, archive, out, ray_address=f"ray://127.0.0.1:{port}")
    with pytest.raises(LinewatchError, match="names no host"):
        score_archive(exported, archive, out, ray_address="ray://:10001")
    with pytest.raises(LinewatchError, match="not a Ray address"):
        score_archive(exported, archive, out, ray_address="ray://head:port")
    assert not out.exists()  # nothing written, so the same command runs again without --resume
