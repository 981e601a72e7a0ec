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
