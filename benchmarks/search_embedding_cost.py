"""What the search embeddings add to scoring one image: the grids in the graph, and the pooling outside it.

    python benchmarks/search_embedding_cost.py --model MODEL_DIR [--images N]
    python benchmarks/search_embedding_cost.py              # trains a default PatchCore on the synthetic generator
    python benchmarks/search_embedding_cost.py --model MODEL_DIR --data ../shared/data/mvtec_ad/bottle/test

``--data`` scores the images of a folder (its test images, say: N spread evenly over them) instead of the synthetic
generator's, so that a model's regions are those of its own part (a bottle model on generated washers finds large
regions everywhere, and the embeddings' cost grows with the regions' pixels).

Per image, batch size 1; "without" and "with" run alternately (ABBA), and the added cost is reported two ways: the
median of the paired differences, and the difference of the fastest runs (the machine is shared, so single
timings swing by more than what is measured; the fastest run is the one least disturbed):
- torch: ``_score`` without the grids vs with them (residual gather + two average pools);
- ONNX Runtime: the model exported the way it was before (score and map only) vs with the two grid outputs;
- post-processing (regions, map to the original size) without vs with ``embed`` (image, region, peak vectors);
- the crop vectors (models with ``search_vectors="crop"``, the default): post-processing with the residual vectors
  alone vs with each region's crop run through the backbone too (``crops.onnx`` in ONNX Runtime, one crop at a
  time; in torch, a batch of images' crops in one pass, as ``iter_predict`` does it, per image).
  ``--search-vectors`` scores the model with the other kind.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

CLOCK = time.perf_counter


def _paired_ms(plain, more, reps: int) -> list[tuple[float, float]]:
    """(plain ms, more ms) pairs, the two run alternately so that load from other processes hits both alike."""
    plain(), more()  # warm-up
    pairs = []
    for r in range(reps):
        ms = {}
        for name, fn in (("a", plain), ("b", more)) if r % 2 == 0 else (("b", more), ("a", plain)):
            t0 = CLOCK()
            fn()
            ms[name] = (CLOCK() - t0) * 1000
        pairs.append((ms["a"], ms["b"]))
    return pairs


class _TwoOutputs(torch.nn.Module):
    def __init__(self, graph):
        super().__init__()
        self.graph = graph

    def forward(self, x):
        return self.graph(x)[:2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path)
    ap.add_argument("--images", type=int, default=12)
    ap.add_argument("--data", type=Path, help="a folder of images to score (default: the synthetic generator's)")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--search-vectors", choices=("regions", "crop"), help="override the model's own")
    ap.add_argument(
        "--cpu",
        action="store_true",
        help="one thread, CPU time of this process instead of wall time: what the work costs, whatever else runs",
    )
    args = ap.parse_args()
    global CLOCK
    if args.cpu:
        CLOCK = time.process_time
        torch.set_num_threads(1)
    import onnxruntime as ort

    from linewatch.vision.detector import use_all_cores
    from linewatch.vision.export import export_onnx
    from linewatch.vision.images import open_image
    from linewatch.vision.patchcore import PatchCore
    from linewatch.vision.saving import load, save
    from linewatch.vision.scoring import map_components, postprocess
    from linewatch.vision.synthetic import make_dataset

    threads = 1 if args.cpu else use_all_cores()
    tmp = Path(tempfile.mkdtemp())
    data = make_dataset(tmp / "washer", n_train=40, n_test_good=4, n_test_defect=4)
    if args.model:
        model = tmp / "model"
        import shutil

        shutil.copytree(args.model, model)
    else:
        from linewatch.vision.datasets import load_dataset

        model = save(PatchCore().fit(load_dataset(data).train), tmp / "model")
    if args.search_vectors:
        import json

        manifest = json.loads((model / "manifest.json").read_text())
        manifest["hyperparameters"]["search_vectors"] = args.search_vectors
        (model / "manifest.json").write_text(json.dumps(manifest))
    det = load(model)
    if args.cpu:
        import faiss

        torch.set_num_threads(1)
        faiss.omp_set_num_threads(1)
    pre = det.preprocess
    if args.data:
        from linewatch.vision.images import is_image_file, spread

        paths = list(spread(sorted(p for p in args.data.rglob("*") if is_image_file(p)), args.images))
        if not paths:
            raise SystemExit(f"no images under {args.data}")
    else:
        paths = sorted((data / "test").rglob("*.png"))[: args.images]
    inputs = [torch.from_numpy(pre(open_image(p))[None]) for p in paths]

    # torch graph: without vs with the grids
    torch_pairs, outs = [], []
    with torch.inference_mode():
        for x in inputs:
            torch_pairs += _paired_ms(lambda x=x: det._score(x, False), lambda x=x: det._score(x, True), args.reps)
            outs.append([t.numpy() for t in det._score(x, True)])

    # ONNX Runtime: the old two-output export vs the current one
    export_onnx(model)
    s = pre.input_size
    old = tmp / "old.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _TwoOutputs(det.graph()).eval(), (torch.zeros(1, 3, s, s),), str(old), input_names=["image"],
            output_names=["score", "anomaly_map"], opset_version=17, dynamo=False,
        )  # fmt: skip
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    new_sess = ort.InferenceSession(str(model / "model.onnx"), opts, providers=["CPUExecutionProvider"])
    old_sess = ort.InferenceSession(str(old), opts, providers=["CPUExecutionProvider"])
    onnx_pairs = []
    for x in inputs:
        feed = {"image": x.numpy()}
        onnx_pairs += _paired_ms(
            lambda feed=feed: old_sess.run(None, feed), lambda feed=feed: new_sess.run(None, feed), args.reps
        )

    # post-processing without vs with the embeddings
    post_pairs, n_regions = [], []
    layers = det.residual_layers
    for (score, amap, feats, res), path in zip(outs, paths, strict=True):
        w, h = open_image(path).size
        args_ = (float(score[0]), amap[0], det.calibration_, pre, w, h, det.min_region_area, None)
        post_pairs += _paired_ms(
            lambda a=args_: postprocess(*a), lambda a=args_, g=(feats[0], res[0]): postprocess(*a, g, layers), args.reps
        )
        n_regions.append(len(postprocess(*args_).regions))

    # the crop vector: post-processing with the residual vectors vs with the crop's backbone pass too
    from linewatch.vision.runtime import OnnxModel

    onnx = OnnxModel(model, threads=threads)
    crop_pairs = {"torch": [], "ONNX": []}
    if onnx.crop_session is not None:
        items = []
        for (score, amap, feats, res), path, x in zip(outs, paths, inputs, strict=True):
            w, h = open_image(path).size
            args_ = (float(score[0]), amap[0], det.calibration_, pre, w, h, det.min_region_area, None)
            g, xi = (feats[0], res[0]), x[0].numpy()
            items.append((args_, g, xi))
            # ONNX Runtime: one crop at a time, as OnnxModel does it
            crop_pairs["ONNX"] += _paired_ms(
                lambda a=args_, g=g: postprocess(*a, g, layers),
                lambda a=args_, g=g, v=onnx._crop_vector(xi): postprocess(*a, g, layers, v),
                args.reps,
            )
        # PyTorch: as iter_predict does it, every crop of a batch of images in one backbone pass (per image below)
        bs = det.params_["batch_size"]
        for lo in range(0, len(items), bs):
            chunk = items[lo : lo + bs]

            def plain(chunk=chunk):
                for a, g, _ in chunk:
                    postprocess(*a, g, layers)

            def more(chunk=chunk):
                maps = np.stack([a[1] for a, _, _ in chunk])
                found = [map_components(m, det.calibration_, det.min_region_area) for m in maps]
                tables = det._batch_crops(maps, [(None, None, x) for *_, x in chunk], found)
                for (a, g, _), table, comps in zip(chunk, tables, found, strict=True):
                    postprocess(*a, g, layers, table, comps)

            pairs = _paired_ms(plain, more, args.reps)
            crop_pairs["torch"] += [(p / len(chunk), m / len(chunk)) for p, m in pairs]

    med = statistics.median
    print(f"model {args.model or 'synthetic default'} on {args.data or 'generated images'}: input {s} px, "
          f"grid {outs[0][2].shape[-1]} x {outs[0][2].shape[-2]}, {len(paths)} images "
          f"({np.mean(n_regions):.1f} regions on average), "
          f"{threads} threads, {'CPU' if args.cpu else 'wall'} time")  # fmt: skip
    print("| step | without, ms (median) | with, ms (median) | added, ms (median of pairs) | added, ms (fastest) |")
    print("|---|---:|---:|---:|---:|")
    added = {}
    for name, pairs in (
        ("torch scoring graph", torch_pairs),
        ("ONNX Runtime graph", onnx_pairs),
        ("post-processing (regions, map; + pooling)", post_pairs),
        *((f"crop vector, {k}", crop_pairs[k]) for k in ("torch", "ONNX") if crop_pairs[k]),
    ):
        fastest = min(b for _, b in pairs) - min(a for a, _ in pairs)
        added[name] = (med(b - a for a, b in pairs), fastest)
        print(
            f"| {name} | {med(a for a, _ in pairs):.2f} | {med(b for _, b in pairs):.2f} | {added[name][0]:+.2f} "
            f"| {fastest:+.2f} |"
        )
    post = added["post-processing (regions, map; + pooling)"]
    for path, key in (("torch", "torch scoring graph"), ("ONNX", "ONNX Runtime graph")):
        a = added[key]
        c = added.get(f"crop vector, {path}", (0.0, 0.0))
        total = (a[0] + post[0] + c[0], a[1] + post[1] + c[1])
        print(f"| **added per image, {path} path** | | | **{total[0]:+.2f}** | **{total[1]:+.2f}** |")


if __name__ == "__main__":
    main()
