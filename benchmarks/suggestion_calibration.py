"""Is the suggestion chip's confidence a calibrated probability? Reliability tables, ECE and Brier score.

    python benchmarks/suggestion_calibration.py DATA_ROOT/mvtec_ad/bottle DATA_ROOT/magnetic_tile/magnetic_tile \\
        --synthetic --models /tmp/lw-calib-models [--splits 20] [--per-type 40] [--train-limit 200]

For each category (MVTec layout: train/good, test/<defect type>; ``--synthetic`` adds one made by
``linewatch.vision.synthetic``) a real service (in-process, SQLite, temp data dir) with a PatchCore of that category
(trained with the defaults on train/good, at most ``--train-limit`` images, kept under ``--models``) inspects the
defective test images (at most ``--per-type`` of each type) through the API. Then, ``--splits`` times: reviewers
label a random half with the true defect type (through the API) and every other image asks for a suggestion
(``linewatch.services.searching.suggest``). Each suggestion gives the raw score (``share``: the winner's smoothed
vote share, the confidence before calibration) and the reported ``confidence`` (calibrated on the labelled half by
leave-one-out). Reported for both: a reliability table (10 equal-width confidence bins: mean confidence, accuracy,
count), the expected calibration error (count-weighted |confidence - accuracy| over the bins) and the Brier score
((confidence - right)^2, averaged), over all splits together. Parts the model passed get no suggestion and are
counted apart.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from search_service import headers, register, service  # noqa: E402

from linewatch.search.calibration import reliability  # noqa: E402


def model_for(category: Path, models: Path, train_limit: int) -> Path:
    from linewatch.vision.datasets import load_dataset
    from linewatch.vision.export import export_onnx
    from linewatch.vision.saving import create_detector, save

    out = models / category.name
    if (out / "manifest.json").exists():
        return out
    ds = load_dataset(category)
    train = sorted(ds.train)
    if train_limit and len(train) > train_limit:  # every n-th image, the same each run
        train = train[:: -(-len(train) // train_limit)]
    print(f"training {category.name} on {len(train)} images", file=sys.stderr)
    path = save(create_detector("patchcore").fit(train), out)
    export_onnx(path)
    return path


def defective(category: Path, per_type: int, seed: int) -> list[Path]:
    rng = random.Random(seed)
    out = []
    for d in sorted((category / "test").iterdir()):
        if d.name == "good" or not d.is_dir():
            continue
        files = sorted(p for p in d.iterdir() if p.suffix.lower() in {".png", ".jpg", ".jpeg", ".bmp", ".tif"})
        out += sorted(rng.sample(files, per_type)) if per_type and len(files) > per_type else files
    return out


def measure(category: Path, model: Path, paths: list[Path], splits: int, seed: int) -> dict:
    from sqlalchemy import delete, update

    from linewatch.services.searching import suggest
    from linewatch.store.tables import Inspection, Review

    kinds = [p.parent.name for p in paths]
    rng = random.Random(seed)
    raw, cal, right, none, fitted = [], [], [], 0, []
    with tempfile.TemporaryDirectory(prefix="lw-calib-") as tmp, service(Path(tmp)) as (client, ctx):
        eng, op = headers(client, ctx, "engineer"), headers(client, ctx, "operator")
        register(client, ctx, model, eng)
        ids = []
        for p in paths:
            r = client.post("/api/v1/stations/line1/inspect", files=[("files", (p.name, p.read_bytes()))], headers=op)
            assert r.status_code == 200, r.text
            ids.append(r.json()[0]["id"])
        for split in range(splits):
            with ctx.sessions() as s, s.begin():
                s.execute(delete(Review))
                s.execute(update(Inspection).values(reviewed=False, review_verdict=None, defect_type=None))
            for iid in ids:  # the index's payloads too: no label of an earlier split may vote
                ctx.search.refresh(iid)
            order = list(range(len(ids)))
            rng.shuffle(order)
            labelled, rest = order[: len(ids) // 2], order[len(ids) // 2 :]
            for i in labelled:
                r = client.post(
                    f"/api/v1/inspections/{ids[i]}/reviews",
                    json={"verdict": "anomalous", "defect_type": kinds[i]},
                    headers=op,
                )
                assert r.status_code == 201, r.text
            for i in rest:
                with ctx.sessions() as s:
                    got = suggest(ctx.search, s, ids[i])
                if got is None:
                    none += 1
                    continue
                raw.append(got.share)
                cal.append(got.confidence)
                right.append(got.defect_type == kinds[i])
                fitted.append(got.calibrated_on)
            print(f"{category.name}: split {split + 1}/{splits}", file=sys.stderr, end="\r")
    print(file=sys.stderr)
    return {"raw": raw, "cal": cal, "right": right, "none": none, "fitted": fitted, "n_types": len(set(kinds))}


def table(name: str, conf: list[float], right: list[bool]) -> tuple[float, float]:
    rows, ece, brier = reliability(conf, right)
    print(f"\n{name}: ECE {ece:.3f}, Brier {brier:.3f}")
    print("| confidence | mean confidence | accuracy | suggestions |")
    print("|---|---|---|---|")
    for lo, mc, acc, n in rows:
        print(f"| {lo:.1f}–{lo + 0.1:.1f} | {mc:.3f} | {acc:.3f} | {n} |")
    return ece, brier


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("categories", type=Path, nargs="*", help="MVTec-layout categories")
    ap.add_argument("--synthetic", action="store_true", help="also a category made by linewatch.vision.synthetic")
    ap.add_argument("--models", type=Path, default=Path(tempfile.gettempdir()) / "lw-calib-models")
    ap.add_argument("--splits", type=int, default=20)
    ap.add_argument("--per-type", type=int, default=40, help="defective test images per type, at most (0: all)")
    ap.add_argument("--train-limit", type=int, default=200, help="train/good images, at most (0: all)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    cats = list(args.categories)
    if args.synthetic:
        from linewatch.vision.synthetic import make_dataset

        root = args.models / "data" / "synthetic"
        if not (root / "test").exists():
            make_dataset(root, n_train=40, n_test_good=0, n_test_defect=30, size=256, seed=args.seed)
        cats.append(root)
    summary = []
    for cat in cats:
        model = model_for(cat, args.models, args.train_limit)
        paths = defective(cat, args.per_type, args.seed)
        r = measure(cat, model, paths, args.splits, args.seed)
        fitted = sorted(r["fitted"])
        print(
            f"\n## {cat.name}: {len(paths)} defective images, {r['n_types']} types, {args.splits} random halves "
            f"reviewed; {len(r['right'])} suggestions, {r['none']} parts passed by the model (no suggestion); "
            f"calibration map fitted on {fitted[len(fitted) // 2] if fitted else 0} reviewed (median)"
        )
        before = table("before: smoothed vote share", r["raw"], r["right"])
        after = table("after: calibrated confidence", r["cal"], r["right"])
        acc = sum(r["right"]) / max(len(r["right"]), 1)
        summary.append((cat.name, len(r["right"]), acc, *before, *after))
    print("\n| data set | suggestions | accuracy | ECE before | Brier before | ECE after | Brier after |")
    print("|---|---|---|---|---|---|---|")
    for name, n, acc, e0, b0, e1, b1 in summary:
        print(f"| {name} | {n} | {acc:.3f} | {e0:.3f} | {b0:.3f} | {e1:.3f} | {b1:.3f} |")


if __name__ == "__main__":
    main()
