"""PaDiM's share in the combined image score: the self-check's figure for each share beside the real test set's.

    python benchmarks/vision_padim_share.py ../shared/data/mvtec_ad/bottle ../shared/data/magnetic_tile/magnetic_tile

For each MVTec-layout category: a combined model fitted with the defaults (the share it chose is reported), then
each share in SHARES weighs the two parts' raw image scores (each part over its own image threshold, as the model
does) on the painted copies of the held-out good images (the self-check the choice reads) and on the category's test
set (image AUROC). Prints a markdown table per category. ``vision_moved.py`` makes a moved and turned copy of a
category (parts anywhere in the frame).
"""

from __future__ import annotations

import argparse
from pathlib import Path

SHARES = (0.0, 0.25, 0.5, 1.0, 2.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("categories", nargs="+", type=Path)
    a = ap.parse_args()

    import numpy as np
    import torch

    import linewatch.vision.methodchoice as mc
    from linewatch.vision.batches import iter_batches
    from linewatch.vision.datasets import load_dataset
    from linewatch.vision.detector import score_on_one_pass
    from linewatch.vision.metrics import rank_auroc
    from linewatch.vision.saving import create_detector

    seen: dict = {}
    choose = mc.choose_share

    def spy(weights, scores, companion_scores, n_good):
        seen.update(weights=weights.copy(), scores=scores, companion=companion_scores)
        return choose(weights, scores, companion_scores, n_good)

    mc.choose_share = spy
    for root in a.categories:
        ds = load_dataset(root)
        seen.clear()
        det = create_detector("combined").fit(ds.train)
        if not seen:
            print(f"{root}: no share was chosen (no self-check)")
            continue
        w = seen["weights"]
        (good, bad), (other_good, other_bad) = seen["scores"], seen["companion"]
        y_check = np.r_[np.zeros(len(good)), np.ones(len(bad))]
        own_check = np.r_[good, bad] * w[0]
        other_check = np.r_[other_good, other_bad] * w[1]
        own, other = [], []
        with torch.inference_mode():
            for batch in iter_batches([s.path for s in ds.test], det._parts[0].preprocess, 8):
                (a_scores, *_), (b_scores, *_) = score_on_one_pass(det._parts, torch.from_numpy(batch.inputs))
                own += a_scores.tolist()
                other += b_scores.tolist()
        y_test = np.array([s.is_anomalous for s in ds.test], float)
        own_test, other_test = np.array(own) * w[0], np.array(other) * w[1]
        chosen = det.train_info_["combined"]["padim_share"]
        print(f"\n{root.name}: share chosen {chosen:g} ({len(good)} held-out good images, {len(bad)} painted copies)\n")
        print("| PaDiM's share | self-check image AUROC | test image AUROC |")
        print("|---:|---:|---:|")
        for f in (*SHARES, None):
            check = own_check + f * other_check if f is not None else other_check
            test = own_test + f * other_test if f is not None else other_test
            name = f"{f:g}" if f is not None else "PaDiM alone"
            mark = " (chosen)" if f == chosen else ""
            print(f"| {name}{mark} | {rank_auroc(y_check, check):.4f} | {rank_auroc(y_test, test):.4f} |")


if __name__ == "__main__":
    main()
