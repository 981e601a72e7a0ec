"""Defect search retrieval quality: leave-one-out defect-type precision@5 on a category's defective test images,
region embeddings against whole-image embeddings, from one scoring pass per image; and, as an upper bound no
deployed system has (it reads the true defect masks), crops around each true defect re-embedded by the same backbone.

    python benchmarks/search_retrieval.py /work/shared/data/mvtec_ad/bottle [--model MODEL_DIR]
    python benchmarks/search_retrieval.py --synthetic            # the project's generator (scratch/spot/chip)

Without --model a PatchCore is trained with the defaults on the category's train/good images. Every defective
test image is a query; its 5 nearest other defective images (by the best region-to-region cosine similarity, or
by image embedding) are hits when they share its defect type. Chance is the mean share of same-type others.
The mask-crop row crops each image around its true mask's bounding box (grown by half its size on every side, at
least 64 px), scores the crop as a new image and takes its whole-image vector. The blend rows rank by
``w * region similarity + (1 - w) * whole-image similarity``; the standardised blends first turn each query's
similarities into z-scores over the other images, so that the whole image's narrow range of cosines counts as much
as the regions' wide one. The detected-crop rows cut each image around its highest-scoring *detected* region (or
the map's peak), re-embed the crop at 128 px with the model's own backbone layers (each layer mean-pooled and
L2-normalised) and add that cosine to the region similarity: the issue's crop idea without the true masks. These
rows are there to decide on categories the defaults were not chosen on (docs/benchmarks.md, "Defect search").
The first row is what the product itself returns: the model's search vectors through ``iter_predict``, with
``--search-vectors`` to score a model with the other kind (``crop``, the default since 2026-12-05, blends the
regions with a re-embedded crop of the top region and the whole image; ``regions``, the residuals alone).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from linewatch.vision.datasets import load_dataset
from linewatch.vision.embeddings import DEFAULT_REGION_MODE, REGION_MODES, embed
from linewatch.vision.regions import find_components


def grids_of(det, paths: list[Path]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(input map, features grid, residuals grid) per image, from the detector's scoring pass."""
    out = []
    for _scores, maps, _sizes, _names, grids in det._raw_batches(paths, None, "score", grids=True):
        out += [(m, g[0], g[1]) for m, g in zip(maps, grids, strict=True)]
    return out


def vectors(det, raw, mode: str, max_regions: int | None) -> tuple[list[np.ndarray], np.ndarray]:
    """Per image: its defect vectors (regions, or the peak when none), and the whole-image vectors."""
    thr = det.calibration_.pixel_threshold
    defects, images = [], []
    for amap, f, r in raw:
        _regions, labels, comps = find_components(amap, thr, det.min_region_area)
        e = embed(f, r, amap, labels, comps, thr, det.residual_layers, mode)
        d = e.defects()
        defects.append(d[:max_regions] if max_regions else d)
        images.append(e.image)
    return defects, np.stack(images)


def precision_at_5(sim: np.ndarray, labels: np.ndarray, k: int = 5) -> float:
    sim = sim.copy()
    np.fill_diagonal(sim, -np.inf)
    top = np.argsort(-sim, axis=1)[:, :k]
    return float((labels[top] == labels[:, None]).mean())


def region_similarity(defects: list[np.ndarray]) -> np.ndarray:
    """Image-to-image similarity: the best cosine similarity over pairs of their defect vectors."""
    allv = np.concatenate(defects)
    owner = np.repeat(np.arange(len(defects)), [len(d) for d in defects])
    s = allv @ allv.T
    n = len(defects)
    best = np.full((n, n), -np.inf, dtype=np.float32)
    for i in range(n):
        rows = s[owner == i]  # (ri, total)
        col_best = rows.max(0)
        np.maximum.at(best[i], owner, col_best)
    return best


def standardised(sim: np.ndarray) -> np.ndarray:
    """Each row's similarities as z-scores over the other images (the diagonal, the query itself, left out)."""
    s = sim.astype(np.float64)
    np.fill_diagonal(s, np.nan)
    z = (s - np.nanmean(s, 1, keepdims=True)) / np.maximum(np.nanstd(s, 1, keepdims=True), 1e-9)
    np.fill_diagonal(z, -np.inf)
    return z


def detected_crops(det, raw, paths: list[Path], size: int = 128, grow: float = 0.5, least: int = 32) -> np.ndarray:
    """(N, C) unit vectors: each image cut around its highest-scoring detected region (the map's peak when it has
    none), the box grown by ``grow`` of its side on every side and at least ``least`` model-input pixels, resized to
    ``size`` px and run through the model's own backbone layers, each layer mean-pooled and L2-normalised."""
    import torch
    from PIL import Image

    mean = np.array([0.485, 0.456, 0.406], np.float32)
    std = np.array([0.229, 0.224, 0.225], np.float32)
    thr = det.calibration_.pixel_threshold
    out = []
    for (amap, _f, _r), path in zip(raw, paths, strict=True):
        regions, _labels, _comps = find_components(amap, thr, det.min_region_area)
        if regions:
            top = max(regions, key=lambda g: g.max_score)
            x0, y0, x1, y1 = top.x, top.y, top.x + top.width, top.y + top.height
        else:
            py, px = np.unravel_index(int(np.argmax(amap)), amap.shape)
            x0, y0, x1, y1 = px, py, px + 1, py + 1
        img = Image.open(path).convert("RGB")
        sx, sy = img.width / amap.shape[1], img.height / amap.shape[0]
        half = max(max(x1 - x0, y1 - y0) * (0.5 + grow), least / 2)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        box = (
            int(max(0, (cx - half) * sx)),
            int(max(0, (cy - half) * sy)),
            int(min(img.width, (cx + half) * sx)),
            int(min(img.height, (cy + half) * sy)),
        )
        arr = (np.asarray(img.crop(box).resize((size, size), Image.BILINEAR), np.float32) / 255.0 - mean) / std
        with torch.inference_mode():
            maps = det.extractor_(torch.from_numpy(arr.transpose(2, 0, 1).copy())[None])
        parts = [m.mean((2, 3))[0].numpy() for m in maps]
        v = np.concatenate([p / max(float(np.linalg.norm(p)), 1e-12) for p in parts])
        out.append(v / max(float(np.linalg.norm(v)), 1e-12))
    return np.stack(out)


def mask_crops(samples, out: Path, grow: float = 0.5, least: int = 64) -> list[Path]:
    """Each sample's image cropped around its true defect mask's bounding box, written under ``out``."""
    from PIL import Image

    paths = []
    for i, s in enumerate(samples):
        img = Image.open(s.path)
        img.load()
        mask = np.asarray(Image.open(s.mask_path).convert("L").resize(img.size, Image.NEAREST)) > 0
        ys, xs = np.nonzero(mask)
        if len(xs) == 0:  # no mask: the whole image
            x0, y0, x1, y1 = 0, 0, img.width, img.height
        else:
            x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
        side = max(x1 - x0, y1 - y0)
        half = max(side * (0.5 + grow), least / 2)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        box = [
            int(max(0, cx - half)),
            int(max(0, cy - half)),
            int(min(img.width, cx + half)),
            int(min(img.height, cy + half)),
        ]
        path = out / f"{i:04d}.png"
        img.crop(box).save(path)
        paths.append(path)
    return paths


def evaluate(det, samples, name: str, crops: bool = True) -> list[dict]:
    paths = [s.path for s in samples]
    labels = np.array([s.label for s in samples])
    started = time.perf_counter()
    raw = grids_of(det, paths)
    secs = time.perf_counter() - started
    chance = float(np.mean([(labels == lab).sum() - 1 for lab in labels]) / (len(labels) - 1))
    rows = []
    started = time.perf_counter()
    model = [pred.embeddings.defects() for pred in det.iter_predict(paths)]
    rows.append(
        {
            "data": name,
            "embedding": f"the model's search vectors (search_vectors={det.params_['search_vectors']})",
            "p@5": precision_at_5(region_similarity(model), labels),
            "seconds": round(time.perf_counter() - started, 1),
        }
    )
    _, images = vectors(det, raw, REGION_MODES[0], None)
    whole = precision_at_5(images @ images.T, labels)
    rows.append({"data": name, "embedding": "whole image (mean of features)", "p@5": whole})
    for mode in REGION_MODES:
        for cap in (None, 1):
            defects, _ = vectors(det, raw, mode, cap)
            which = "all regions" if cap is None else "top region only"
            default = " (the regions' default)" if mode == DEFAULT_REGION_MODE and cap is None else ""
            rows.append(
                {
                    "data": name,
                    "embedding": f"region: {mode}, {which}{default}",
                    "p@5": precision_at_5(region_similarity(defects), labels),
                }
            )
    defects, _ = vectors(det, raw, DEFAULT_REGION_MODE, None)
    region = region_similarity(defects)
    for w in (0.75, 0.5):
        rows.append(
            {
                "data": name,
                "embedding": f"blend: {w} x region ({DEFAULT_REGION_MODE}) + {1 - w} x whole image",
                "p@5": precision_at_5(w * region + (1 - w) * (images @ images.T), labels),
            }
        )
    for w in (0.8, 0.6):
        rows.append(
            {
                "data": name,
                "embedding": f"blend, standardised per query: {w} x region + {1 - w:.1f} x whole image",
                "p@5": precision_at_5(w * standardised(region) + (1 - w) * standardised(images @ images.T), labels),
            }
        )
    if crops:
        found = detected_crops(det, raw, paths)
        rows.append(
            {
                "data": name,
                "embedding": "crop around the top detected region",
                "p@5": precision_at_5(found @ found.T, labels),
            }
        )
        for w in (0.75, 0.5):
            rows.append(
                {
                    "data": name,
                    "embedding": f"{w} x region + {1 - w} x crop around the top detected region",
                    "p@5": precision_at_5(w * region + (1 - w) * (found @ found.T), labels),
                }
            )
    if crops and all(s.mask_path for s in samples):
        with tempfile.TemporaryDirectory() as tmp:
            _, crop_vecs = vectors(det, grids_of(det, mask_crops(samples, Path(tmp))), DEFAULT_REGION_MODE, None)
        rows.append(
            {
                "data": name,
                "embedding": "crop around the true mask, re-embedded (upper bound)",
                "p@5": precision_at_5(crop_vecs @ crop_vecs.T, labels),
            }
        )
    for r in rows:
        r.update(images=len(labels), chance=round(chance, 3), scoring_s=round(secs, 1))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data", nargs="?", type=Path, help="MVTec-layout category")
    ap.add_argument("--model", type=Path, help="trained model dir (default: train one with the defaults)")
    ap.add_argument("--synthetic", action="store_true", help="also (or only) the synthetic generator's defects")
    ap.add_argument(
        "--search-vectors",
        choices=("regions", "crop"),
        help="score with these search vectors whatever the model was trained with (default: the model's own)",
    )
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    from linewatch.vision.patchcore import PatchCore
    from linewatch.vision.saving import load
    from linewatch.vision.synthetic import make_dataset

    rows = []
    if args.data:
        ds = load_dataset(args.data)
        det = load(args.model) if args.model else PatchCore().fit(ds.train)
        if args.search_vectors:
            det.params_["search_vectors"] = args.search_vectors
        rows += evaluate(det, [s for s in ds.test if s.is_anomalous], args.data.name)
    if args.synthetic:
        with tempfile.TemporaryDirectory() as tmp:
            root = make_dataset(Path(tmp) / "washer", n_train=40, n_test_good=0, n_test_defect=20, seed=1)
            ds = load_dataset(root)
            det = PatchCore().fit(ds.train)
            if args.search_vectors:
                det.params_["search_vectors"] = args.search_vectors
            rows += evaluate(det, [s for s in ds.test if s.is_anomalous], "synthetic")
    if args.json:
        print(json.dumps(rows))
        return
    print("| data | images | embedding | precision@5 | chance |")
    print("|---|---:|---|---:|---:|")
    for r in rows:
        print(f"| {r['data']} | {r['images']} | {r['embedding']} | {r['p@5']:.3f} | {r['chance']:.3f} |")


if __name__ == "__main__":
    main()
