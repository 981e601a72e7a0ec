"""A stream through the runtime: two workers each scoring whole batches give what images scored one by one give."""

import shutil
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from linewatch.errors import ImageError
from linewatch.vision import runtime
from linewatch.vision.export import export_onnx
from linewatch.vision.runtime import OnnxModel


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    _, path = trained
    model = tmp_path_factory.mktemp("stream") / "m"
    shutil.copytree(path, model)
    export_onnx(model)
    return model


@pytest.fixture(scope="module")
def images(synthetic):
    return [p for d in sorted((synthetic / "test").iterdir()) for p in sorted(d.iterdir())]


def _same(a, b):
    assert a.path == b.path
    assert a.score == pytest.approx(b.score, rel=1e-6, abs=1e-6)
    assert a.verdict == b.verdict
    assert [(r.x, r.y, r.width, r.height) for r in a.regions] == [(r.x, r.y, r.width, r.height) for r in b.regions]
    assert np.allclose(a.anomaly_map, b.anomaly_map, rtol=1e-5, atol=1e-5)
    assert (a.embeddings is None) == (b.embeddings is None)
    if a.embeddings is not None:
        for x, y in ((a.embeddings.image, b.embeddings.image), (a.embeddings.defects(), b.embeddings.defects())):
            assert np.allclose(x, y, rtol=1e-4, atol=1e-5)


def test_workers_give_what_single_images_give_in_order(exported, images):
    m = OnnxModel(exported, threads=2, batch_size=2)
    seen = []
    stream = list(m.iter_predict(images, progress=lambda stage, done, total: seen.append((done, total))))
    assert m._stream_session is not None and m._stream_session is not m.session  # the workers' own session was used
    assert len(stream) == len(images) == 18  # nine batches of two, more than the workers hold at once
    for pred, path in zip(stream, images, strict=True):
        _same(pred, m.predict([path])[0])
    assert [d for d, _ in seen] == list(range(2, 19, 2)) and {t for _, t in seen} == {18}
    one_thread = OnnxModel(exported, threads=1, batch_size=2)  # one worker: decoded ahead, scored by the caller
    for a, b in zip(one_thread.iter_predict(images), stream, strict=True):
        _same(a, b)
    assert one_thread._stream_session is None
    raw = list(m.raw_scores(images))
    assert [r[3] for r in raw] == [str(p) for p in images]
    assert [r[0] for r in raw] == pytest.approx([p.score for p in stream], rel=1e-6, abs=1e-6)


def test_an_unreadable_image_stops_the_stream_with_its_name(exported, images, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    m = OnnxModel(exported, threads=2)
    got = []
    with pytest.raises(ImageError, match="broken.png"):
        for pred in m.iter_predict([*images[:6], bad, *images[6:]]):
            got.append(pred.path)
    assert got == [str(p) for p in images[:6]]  # every image before it was scored and handed out, in order


def test_a_caller_that_stops_early_leaves_no_worker_running(exported, images):
    m = OnnxModel(exported, threads=2)
    stream = m.iter_predict(images)
    first = next(stream)
    assert first.path == str(images[0])
    stream.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("linewatch-score")]


def test_the_workers_share_the_threads(exported):
    m = OnnxModel(exported, threads=4)
    assert m._worker_session().get_session_options().intra_op_num_threads == 4 // runtime.STREAM_WORKERS
    assert m.session.get_session_options().intra_op_num_threads == 4
    single = OnnxModel(exported, threads=1)
    assert single._worker_session() is single.session


def test_images_scored_at_the_same_time_share_the_cores(exported, images):
    m = OnnxModel(exported, threads=2)
    # another upload while the first is scored: the workers' half of the threads
    with m._single_session() as first, m._single_session() as second:
        assert first is m.session
        assert second is m._worker_session() and second is not m.session
    with m._single_session() as alone:  # nothing else in flight again: all the threads
        assert alone is m.session
    alone_preds = [m.predict([p])[0] for p in images[:8]]
    with ThreadPoolExecutor(4) as pool:  # four cameras at once: the same answers as one at a time
        together = list(pool.map(lambda p: m.predict([p])[0], images[:8]))
    for a, b in zip(together, alone_preds, strict=True):
        _same(a, b)
    assert m._single_calls == 0
