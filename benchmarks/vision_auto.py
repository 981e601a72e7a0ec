"""PatchCore's automatic choice (``auto``) against the real test set: does the self-check pick what real defects prefer?

    python benchmarks/vision_auto.py ../shared/data/mvtec_ad/bottle ../shared/data/magnetic_tile/magnetic_tile \
        [--synthetic] [--mode full] [--set PARAM=VALUE ...]

One ``auto`` fit per category (``--mode full``: the default layers, the coarser 8,16 and a 5/4 finer input, each
with a bank of ``bank_size`` entries and of twice as many). Every candidate is scored as it was checked: on the
self-check (the figures the choice used) and on the category's real test set (image AUROC, pixel AUROC, AUPRO at
model input size, ms per image in ``evaluate``). The chosen candidate is marked; the last lines give the whole fit's
time and the model's ms per image. ``--synthetic`` adds the project's generated category (seed 1, 150 good training
images).
Prints markdown tables.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from vision_bank import parse_set  # benchmarks/ is on the path when a script there runs


def run(category: Path, name: str, mode: str, extra: dict) -> tuple[list[dict], dict]:
    from linewatch.vision.autochoice import fit_auto
    from linewatch.vision.datasets import load_dataset
    from linewatch.vision.evaluation import evaluate
    from linewatch.vision.patchcore import PatchCore

    ds = load_dataset(category)
    rows: list[dict] = []
    spent = [0.0]  # seconds in this benchmark's own scoring of the candidates, not part of the fit

    def on_trial(cand, trial) -> None:
        t0 = time.perf_counter()
        cand._calibrate(cand.split(ds.train)[1])  # thresholds for the F1 and rates (the fit sets them once, at the end)
        m = evaluate(cand, ds)
        spent[0] += time.perf_counter() - t0
        rows.append(
            {
                "category": name,
                "strides": ",".join(map(str, trial.strides)),
                "px": trial.image_size,
                "bank": trial.bank,
                "self_image": trial.image_auroc,
                "self_pixel": trial.pixel_auroc,
                "self_score": trial.score,
                "image": m["image_auroc"],
                "pixel": m["pixel_auroc"],
                "aupro": m["aupro"],
                "ms": m["ms_per_image"],
            }
        )
        print(json.dumps(rows[-1]), flush=True)

    det = PatchCore(**{**extra, "auto": mode})
    started = time.perf_counter()
    fit_auto(det, ds.train, on_trial=on_trial)
    fit_s = time.perf_counter() - started
    auto = det.train_info_["auto"]
    if auto["chosen_candidate"] is not None:
        rows[auto["chosen_candidate"]]["chosen"] = True
    m = evaluate(det, ds)
    summary = {
        "category": name,
        "chosen": f"layers {','.join(auto['chosen']['layers'])}, bank {auto['chosen']['bank']}, "
        f"{auto['chosen']['image_size']} px",
        "reason": auto["reason"],
        "fit_s": round(fit_s - spent[0], 1),
        "image": m["image_auroc"],
        "pixel": m["pixel_auroc"],
        "aupro": m["aupro"],
        "ms": m["ms_per_image"],
        "train_images": det.train_info_["train_images"],
        "held_out": det.train_info_["holdout_images"],
    }
    print(json.dumps(summary), flush=True)
    return rows, summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("categories", nargs="*", type=Path)
    ap.add_argument("--synthetic", action="store_true", help="add the generated category (seed 1)")
    ap.add_argument("--mode", default="full", choices=("bank", "full"))
    ap.add_argument("--set", action="append", default=[], metavar="PARAM=VALUE")
    args = ap.parse_args()
    extra = parse_set(args.set)
    cats = [(c, c.name) for c in args.categories]
    tmp = None
    if args.synthetic:
        from linewatch.vision.synthetic import make_dataset

        tmp = tempfile.TemporaryDirectory()
        # enough good images that a bank of twice the default size can fill (1 % of the patches)
        root = make_dataset(Path(tmp.name) / "synthetic", n_train=150, n_test_good=20, n_test_defect=10, seed=1)
        cats.append((root, "synthetic"))
    rows, summaries = [], []
    for path, name in cats:
        r, s = run(path, name, args.mode, extra)
        rows += r
        summaries.append(s)
    cols = [
        "category",
        "strides",
        "px",
        "bank",
        "self_image",
        "self_pixel",
        "self_score",
        "image",
        "pixel",
        "aupro",
        "ms",
    ]
    print("| " + " | ".join(cols) + " | chosen |")
    print("|" + "---|" * (len(cols) + 1))
    for r in rows:
        cells = [f"{r[c]:.3f}" if isinstance(r[c], float) and c not in ("ms",) else str(r[c]) for c in cols]
        print("| " + " | ".join(cells) + f" | {'**yes**' if r.get('chosen') else ''} |")
    print()
    cols = ["category", "train_images", "held_out", "chosen", "fit_s", "image", "pixel", "aupro", "ms", "reason"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for s in summaries:
        cells = [
            f"{s[c]:.3f}" if isinstance(s[c], float) and c in ("image", "pixel", "aupro") else str(s[c]) for c in cols
        ]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
