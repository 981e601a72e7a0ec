"""What an inspection area is worth when a photo holds something that changes from part to part and is no defect:
a printed date code.

    python benchmarks/vision_area.py ../shared/data/mvtec_ad/bottle ../shared/data/magnetic_tile/magnetic_tile \
        [--synthetic] [--method combined] [--code 0.14] [--train-codes N] [--work DIR]

For each category, every photo (training, good and defective test photos alike) gets a printed code in its top-left
corner: a 10 x 10 grid of dark and light cells like a DataMatrix, ``--code`` of the photo's shorter side, its cells
drawn at random for each photo (or, with ``--train-codes N``, one of N codes on the training photos, as if they were
taken on N days, and new ones on the test photos) and its place jittered by a few pixels as a printer's would be.
The ground truth is unchanged (the code is no defect). Four models are trained with the defaults (``--method``) and
evaluated as ``linewatch evaluate`` does (image AUROC, pixel AUROC, AUPRO, false alarms on the good test photos and
misses at the threshold set on held-out good photos):

- the photos as they are (no code): what the model reaches when nothing else varies;
- the photos as they are with the inspection area (``--inspect-area``) that leaves out the corner the codes reach
  and a margin: the best an area can do, since the defects under it are not found;
- with the code, the whole photo inspected;
- with the code and the area.

Writes the stamped copies under ``--work`` (a temporary folder by default) and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

GRID = 10


def _stamp(img: Image.Image, rng: np.random.Generator, share: float, bits: np.ndarray | None = None):
    """``img`` with a 10 x 10 code (``bits``, random when None; a quiet zone around it) near its top-left corner, and
    where the code ends (its right and bottom edges, fractions of the photo's width and height)."""
    arr = np.asarray(img.convert("RGB")).copy()
    h, w = arr.shape[:2]
    side = max(GRID + 2, int(round(share * min(h, w))))
    cell = side / (GRID + 2)
    jitter = max(1, int(round(0.01 * min(h, w))))
    x0 = int(round(0.04 * w)) + int(rng.integers(-jitter, jitter + 1))
    y0 = int(round(0.04 * h)) + int(rng.integers(-jitter, jitter + 1))
    arr[y0 : y0 + side, x0 : x0 + side] = 235  # the label's light quiet zone
    if bits is None:
        bits = rng.integers(0, 2, (GRID, GRID)).astype(bool)
    for (i, j), on in np.ndenumerate(bits):
        if on:
            ya, yb = y0 + int(round((i + 1) * cell)), y0 + int(round((i + 2) * cell))
            xa, xb = x0 + int(round((j + 1) * cell)), x0 + int(round((j + 2) * cell))
            arr[ya:yb, xa:xb] = 25
    return Image.fromarray(arr), ((x0 + side) / w, (y0 + side) / h)


def _stamped_copy(root: Path, out: Path, share: float, train_codes: int = 0, seed: int = 0) -> tuple[Path, list]:
    """The MVTec-layout category at ``root`` with every photo stamped, masks copied unchanged, and how far the codes
    reach on any photo (the largest right and bottom edges, as fractions of the photo: photos of other shapes than
    the median put a code of the same pixels elsewhere in the frame). With ``train_codes`` N > 0 the training photos
    carry one of N codes (the days they were taken on) and the test photos new ones."""
    from linewatch.vision.images import open_image

    done = out / ".stamped.json"
    if done.exists():  # made by an earlier run (--work)
        return out, json.loads(done.read_text())
    reach = [0.0, 0.0]
    rng = np.random.default_rng(seed)
    days = [rng.integers(0, 2, (GRID, GRID)).astype(bool) for _ in range(train_codes)]
    for src in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = src.relative_to(root)
        dst = out / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if rel.parts[0] == "ground_truth" or src.suffix.lower() not in (".png", ".jpg", ".jpeg", ".bmp"):
            shutil.copyfile(src, dst)
            continue
        bits = days[int(rng.integers(len(days)))] if days and rel.parts[0] == "train" else None
        img, (rx, ry) = _stamp(open_image(src), rng, share, bits)
        img.save(dst.with_suffix(".png"))
        reach = [max(reach[0], rx), max(reach[1], ry)]
    done.write_text(json.dumps(reach))
    return out, reach


MARGIN = 0.05  # beyond the codes' reach, a share of each side: a patch's features see a little around it


def _area(out: Path, shape: tuple[int, int], reach: list) -> Path:
    """White but for the corner the codes reach on any photo, and a margin."""
    h, w = shape
    mask = np.full((h, w), 255, np.uint8)
    mask[: int(round((reach[1] + MARGIN) * h)), : int(round((reach[0] + MARGIN) * w))] = 0
    Image.fromarray(mask).save(out)
    return out


def _masked_defects(data: Path, area_png: Path) -> float:
    """The share of the test set's ground-truth defect pixels that fall outside the area (those it cannot find)."""
    from linewatch.vision.area import at_size, read_area

    area = read_area(area_png)
    out = inside = 0
    for m in sorted((data / "ground_truth").rglob("*.png")):
        with Image.open(m) as im:
            gt = np.asarray(im.convert("L")) > 127
        if gt.any():
            keep = at_size(area, gt.shape[1], gt.shape[0])
            out += int((gt & ~keep).sum())
            inside += int(gt.sum())
    return out / inside if inside else 0.0


def _run(data: Path, method: str, out: Path, area: Path | None) -> dict:
    from linewatch.vision.datasets import load_dataset
    from linewatch.vision.evaluation import evaluate
    from linewatch.vision.saving import create_detector

    ds = load_dataset(data)
    params = {"inspect_area": str(area)} if area else {}
    started = time.perf_counter()
    det = create_detector(method, **params).fit(ds.train, fingerprint=ds.fingerprint())
    train_s = time.perf_counter() - started
    m = evaluate(det, ds)
    return {**m, "train_s": train_s}


def _median_shape(folder: Path) -> tuple[int, int]:
    """(height, width) of a mask at the photos' median width / height (``median_aspect``, as the training checks it),
    1,000 pixels high."""
    from linewatch.vision.images import median_aspect

    aspect = median_aspect(sorted(folder.iterdir())) or 1.0
    return 1000, int(round(1000 * aspect))


def _row(name: str, label: str, m: dict) -> str:
    def f(key):
        v = m.get(key)
        return "—" if v is None else f"{v:.3f}"

    def pct(key):
        v = m.get(key)
        return "—" if v is None else f"{v:.1%}"

    return (
        f"| {name} | {label} | {f('image_auroc')} | {f('pixel_auroc')} | {f('aupro')} | {pct('false_alarm_rate')} | "
        f"{pct('miss_rate')} | {m['train_s']:.1f} |"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("categories", nargs="*", type=Path)
    ap.add_argument("--synthetic", action="store_true", help="also the project's generated set")
    ap.add_argument("--method", default="combined")
    ap.add_argument("--code", type=float, default=0.14, help="the code's side, a share of the photo's shorter side")
    ap.add_argument(
        "--train-codes",
        type=int,
        default=0,
        help="N > 0: the training photos carry one of N codes (a few days' dates), the test photos new ones; "
        "0: every photo its own",
    )
    ap.add_argument("--work", type=Path, default=None)
    a = ap.parse_args(argv)
    work = a.work or Path(tempfile.mkdtemp(prefix="lw_area_"))
    cats = list(a.categories)
    if a.synthetic:
        from linewatch.vision.synthetic import make_dataset

        cats.append(make_dataset(work / "synthetic", n_train=120, n_test_good=40, n_test_defect=20))
    codes = "every photo its own"
    if a.train_codes:
        codes = f"training photos with {a.train_codes} codes, test photos new ones"
    print(f"method {a.method}, code {a.code:.0%} of the shorter side, {codes}\n")
    print(
        "| category | photos | image AUROC | pixel AUROC | AUPRO | false alarms (good test) | misses | train s |\n"
        "|---|---|---:|---:|---:|---:|---:|---:|",
        flush=True,
    )
    for cat in cats:
        stamped, reach = _stamped_copy(cat, work / f"{cat.name}_stamped{a.train_codes or ''}", a.code, a.train_codes)
        mask = _area(work / f"{cat.name}_area.png", _median_shape(stamped / "train" / "good"), reach)
        inspected = float((np.asarray(Image.open(mask)) > 127).mean())
        lost = _masked_defects(cat, mask)
        print(f"<!-- {cat.name}: {lost:.1%} of the defect pixels lie outside the area -->", flush=True)
        for label, data, area in (
            ("as photographed", cat, None),
            (f"as photographed, area ({inspected:.0%} inspected)", cat, mask),
            ("code, whole photo", stamped, None),
            (f"code, area ({inspected:.0%} inspected)", stamped, mask),
        ):
            m = _run(data, a.method, work / "model", area)
            print(_row(cat.name, label, m), flush=True)
    if a.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
