"""What the search embeddings add to scoring one image: the grids in the graph, and the pooling outside it.

    python benchmarks/search_embedding_cost.py --model MODEL_DIR [--images N]
    python benchmarks/search_embedding_cost.py              # trains a default PatchCore on the synthetic generator

Per image, batch size 1, medians over interleaved repetitions:
- torch: ``_score`` without the grids vs with them (residual gather + two average pools);
- ONNX Runtime: the model exported the way it was before (score and map only) vs with the two grid outputs;
- post-processing (regions, map to the original size) without vs with ``embed`` (image, region, peak vectors).
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


def _median_ms(fn, reps: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


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
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    import onnxruntime as ort

    from linewatch.vision.detector import use_all_cores
    from linewatch.vision.export import export_onnx
    from linewatch.vision.images import open_image
    from linewatch.vision.patchcore import PatchCore
    from linewatch.vision.saving import load, save
    from linewatch.vision.scoring import postprocess
    from linewatch.vision.synthetic import make_dataset

    threads = use_all_cores()
    tmp = Path(tempfile.mkdtemp())
    data = make_dataset(tmp / "washer", n_train=40, n_test_good=4, n_test_defect=4)
    if args.model:
        model = tmp / "model"
        import shutil

        shutil.copytree(args.model, model)
    else:
        from linewatch.vision.datasets import load_dataset

        model = save(PatchCore().fit(load_dataset(data).train), tmp / "model")
    det = load(model)
    pre = det.preprocess
    paths = sorted((data / "test").rglob("*.png"))[: args.images]
    inputs = [torch.from_numpy(pre(open_image(p))[None]) for p in paths]

    # torch graph: without vs with the grids
    t_plain, t_grids, outs = [], [], []
    with torch.inference_mode():
        for x in inputs:
            t_plain.append(_median_ms(lambda x=x: det._score(x, False), args.reps))
            t_grids.append(_median_ms(lambda x=x: det._score(x, True), args.reps))
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
    o_plain, o_grids = [], []
    for x in inputs:
        feed = {"image": x.numpy()}
        o_plain.append(_median_ms(lambda feed=feed: old_sess.run(None, feed), args.reps))
        o_grids.append(_median_ms(lambda feed=feed: new_sess.run(None, feed), args.reps))

    # post-processing without vs with the embeddings
    p_plain, p_emb, n_regions = [], [], []
    layers = det.residual_layers
    for (score, amap, feats, res), path in zip(outs, paths, strict=True):
        w, h = open_image(path).size
        args_ = (float(score[0]), amap[0], det.calibration_, pre, w, h, det.min_region_area, None)
        p_plain.append(_median_ms(lambda a=args_: postprocess(*a), args.reps))
        p_emb.append(_median_ms(lambda a=args_, g=(feats[0], res[0]): postprocess(*a, g, layers), args.reps))
        n_regions.append(len(postprocess(*args_).regions))

    med = statistics.median
    print(f"model {args.model or 'synthetic default'}: input {s} px, grid {outs[0][2].shape[-1]} x "
          f"{outs[0][2].shape[-2]}, {len(paths)} images ({np.mean(n_regions):.1f} regions on average), "
          f"{threads} threads")  # fmt: skip
    print("| step | without embeddings, ms | with, ms | added, ms |")
    print("|---|---:|---:|---:|")
    rows = [
        ("torch scoring graph", med(t_plain), med(t_grids)),
        ("ONNX Runtime graph", med(o_plain), med(o_grids)),
        ("post-processing (regions, map; + pooling)", med(p_plain), med(p_emb)),
    ]
    for name, a, b in rows:
        print(f"| {name} | {a:.2f} | {b:.2f} | {b - a:+.2f} |")
    print(
        f"| **added per image** (torch path) | | | **{med(t_grids) - med(t_plain) + med(p_emb) - med(p_plain):+.2f}** |"
    )
    print(
        f"| **added per image** (ONNX path) | | | **{med(o_grids) - med(o_plain) + med(p_emb) - med(p_plain):+.2f}** |"
    )


if __name__ == "__main__":
    main()
