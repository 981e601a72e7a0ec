"""`linewatch search index DATA --model MODEL --out INDEX` and `linewatch search query INDEX IMAGE... --json`."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from linewatch.cli import app

RUNNER = CliRunner()


def run(*args, check=True):
    """A linewatch command in this process (no interpreter start and torch import per command; an exception that
    escaped the command's own handling would be exit 1, never the users' exit 2)."""
    r = RUNNER.invoke(app, [str(a) for a in args])
    if check:
        assert r.exit_code == 0, r.stderr[-2000:]
    return r


@pytest.fixture(scope="module")
def index(trained, synthetic, tmp_path_factory):
    _, model = trained
    out = tmp_path_factory.mktemp("search") / "index"
    r = run("search", "index", synthetic, "--model", model, "--out", out, "-q")
    assert "indexed" in r.stderr
    return out


def test_index_and_query_json_lines(index, synthetic):
    queries = [synthetic / "test" / "spot" / "000.png", synthetic / "test" / "scratch" / "001.png"]
    out = run("search", "query", index, *queries, "--k", "4", "--json").stdout
    recs = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert [r["query"] for r in recs] == [str(q) for q in queries]
    for q, rec in zip(queries, recs, strict=True):
        nbrs = rec["neighbors"]
        assert len(nbrs) == 4
        assert len({n["path"] for n in nbrs}) == 4  # one entry per image, its best region
        for n in nbrs:
            assert {"path", "label", "similarity", "region"} <= set(n)
            assert Path(n["path"]).exists()
            assert n["label"] == Path(n["path"]).parent.name
            assert n["region"] is None or (len(n["region"]) == 4 and n["region"][0] < n["region"][2])
            assert -1.0 <= n["similarity"] <= 1.0 + 1e-6
        assert [n["similarity"] for n in nbrs] == sorted((n["similarity"] for n in nbrs), reverse=True)
        assert nbrs[0]["path"] == str(q) and nbrs[0]["similarity"] > 0.999  # the query itself is indexed
    # every image under the MVTec layout is indexed (train/good and test/*), never the ground-truth masks
    meta = json.loads((index / "meta.json").read_text())
    n_images = len([p for p in synthetic.rglob("*.png") if "ground_truth" not in p.parts])
    assert meta["info"]["images"] == n_images
    labels = {json.loads(line)["label"] for line in (index / "payloads.jsonl").read_text().splitlines()}
    assert labels == {"good", "scratch", "spot", "chip"}


def test_query_prints_a_table_without_json(index, synthetic, cli_here, monkeypatch):
    """Queries and neighbours are named within the folders they share (a line above the table names each), so a
    terminal of 100 columns shows every neighbour's name whole."""
    import re

    from linewatch.console import out

    monkeypatch.setattr(out, "width", 100)
    r = cli_here("search", "query", index, synthetic / "test" / "chip", "--k", "2")
    assert r.exit_code == 0, r.stdout
    assert "similarity" in r.stdout and "chip" in r.stdout
    assert not r.stdout.lstrip().startswith("{")
    assert f"neighbours in {synthetic / 'test'}" in r.stdout and "…" not in r.stdout, r.stdout
    assert len(re.findall(r"│ (?:chip|spot|scratch|good)/\d{3}\.png", r.stdout)) == 2 * 4, r.stdout


def test_image_level_index(trained, synthetic, tmp_path):
    _, model = trained
    out = tmp_path / "images"
    run("search", "index", synthetic / "test", "--model", model, "--out", out, "--level", "image", "-q")
    rec = json.loads(run("search", "query", out, synthetic / "test" / "good" / "000.png", "--json").stdout)
    assert len(rec["neighbors"]) == 5 and all(n["region"] is None for n in rec["neighbors"])


@pytest.mark.parametrize(
    "args",
    [
        ["search", "index", "{tmp}/nope", "--model", "{model}", "--out", "{tmp}/i"],
        ["search", "index", "{tmp}/empty", "--model", "{model}", "--out", "{tmp}/i"],
        ["search", "index", "{data}", "--model", "{tmp}/nope", "--out", "{tmp}/i"],
        ["search", "index", "{data}", "--model", "{model}", "--out", "{tmp}/afile"],
        ["search", "query", "{tmp}/nope", "{data}/test/spot/000.png"],
        ["search", "query", "{tmp}/empty", "{data}/test/spot/000.png"],
        ["search", "query", "{index}", "{tmp}/nope.png"],
        ["search", "query", "{index}", "{tmp}/broken.png"],
        ["search", "query", "{index}", "{data}/test/spot/000.png", "--k", "0"],
    ],
)
def test_bad_input_exits_2_without_traceback(tmp_path, args, index, trained, synthetic, cli_here):
    _, model = trained
    (tmp_path / "empty").mkdir()
    (tmp_path / "afile").write_text("not an index")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    fmt = dict(tmp=tmp_path, model=model, data=synthetic, index=index)
    r = cli_here(*[a.format(**fmt) for a in args])  # in-process: an exception that escaped would be exit 1, not 2
    assert r.exit_code == 2, (r.stderr, r.exception)
    assert "internal error" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_an_export_without_embeddings_says_to_re_export(trained, synthetic, tmp_path):
    """A model exported before embeddings: --engine onnx is an error naming the fix; auto uses PyTorch."""
    import shutil

    import torch

    from linewatch.vision.manifest import add_file_entry, read_manifest, write_json_atomic

    det, path = trained
    model = tmp_path / "old"
    shutil.copytree(path, model)

    class TwoOutputs(torch.nn.Module):
        def __init__(self, graph):
            super().__init__()
            self.graph = graph

        def forward(self, x):
            return self.graph(x)[:2]

    s = det.preprocess.input_size
    torch.onnx.export(
        TwoOutputs(det.graph()).eval(), (torch.zeros(1, 3, s, s),), str(model / "model.onnx"),
        input_names=["image"], output_names=["score", "anomaly_map"],
        dynamic_axes={"image": {0: "batch"}}, opset_version=17, dynamo=False,
    )  # fmt: skip
    manifest = read_manifest(model)
    add_file_entry(manifest, "onnx", model / "model.onnx", opset=17)
    write_json_atomic(model / "manifest.json", manifest)
    data = synthetic / "test" / "spot"
    r = run("search", "index", data, "--model", model, "--out", tmp_path / "i", "--engine", "onnx", check=False)
    assert r.exit_code == 2 and "re-export" in r.stderr
    run("search", "index", data, "--model", model, "--out", tmp_path / "i", "-q")
    assert json.loads((tmp_path / "i" / "meta.json").read_text())["count"] >= 4


def test_an_unreadable_image_is_skipped_and_named(trained, synthetic, tmp_path):
    import shutil

    _, model = trained
    data = tmp_path / "data"
    shutil.copytree(synthetic / "test" / "spot", data / "spot")
    (data / "spot" / "zz-broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    r = run("search", "index", data, "--model", model, "--out", tmp_path / "i", "-q")
    n = len(list((synthetic / "test" / "spot").iterdir()))
    assert f"indexed {n} images" in r.stderr and "skipped:" in r.stderr and "zz-broken.png" in r.stderr
    rec = json.loads(run("search", "query", tmp_path / "i", synthetic / "test" / "spot" / "000.png", "--json").stdout)
    assert all("zz-broken" not in nb["path"] for nb in rec["neighbors"])
    (data / "spot").rename(data / "gone")
    for p in (data / "gone").iterdir():
        p.write_bytes(b"not an image")
    bad = run("search", "index", data, "--model", model, "--out", tmp_path / "j", check=False)
    assert bad.exit_code == 2 and "no readable image" in bad.stderr


def test_a_query_folder_with_an_unreadable_image_answers_the_others(trained, synthetic, tmp_path, index):
    import shutil

    queries = tmp_path / "queries"
    shutil.copytree(synthetic / "test" / "spot", queries)
    (queries / "001b.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    r = run("search", "query", index, queries, "--json", check=False)
    recs = [json.loads(x) for x in r.stdout.splitlines() if x]
    want = sorted(p.name for p in (synthetic / "test" / "spot").iterdir())
    assert r.exit_code == 2
    assert [Path(x["query"]).name for x in recs] == want and all(len(x["neighbors"]) == 5 for x in recs)
    assert "001b.png" in r.stderr and f"1 of {len(want) + 1} images could not be read" in r.stderr
