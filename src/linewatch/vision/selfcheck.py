"""How well a model trained on good images only finds defects, measured without a single real defect: defects
painted onto held-out good images (a scratch, a patch cut from elsewhere on the part, a stain), scored beside the
same images unpainted. Training reports it; the automatic choice of settings ranks candidates by it.

The painted defects are generic on purpose (they know nothing of the part): thin dark or bright strokes, a patch of
the part's own texture moved and turned (the CutPaste idea), a soft blotch of changed colour. Their size is relative
to the image's shorter side, from thin lines to a few percent of the area, and they are placed in the central 80% of
the image where parts usually are. A model that cannot tell these from good parts will not find real defects of
that scale either; one that can is not proven on real ones, which is why the figure is called a self-check."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from linewatch.errors import ImageError
from linewatch.vision.area import at_size
from linewatch.vision.batches import Source
from linewatch.vision.heap import release_freed_memory
from linewatch.vision.images import open_image, spread
from linewatch.vision.metrics import rank_auroc

KINDS = ("scratch", "patch", "stain")


PLACE_TRIES = 50  # positions drawn for a defect's centre before one inside the inspection area is taken directly


def _place(
    rng: np.random.Generator, w: int, h: int, margin: float, inside: np.ndarray | None = None
) -> tuple[float, float]:
    """A defect's centre in the central 80% of the image; with ``inside`` (the inspection area at the image's size),
    one in the area."""
    for _ in range(PLACE_TRIES if inside is not None else 1):
        x, y = rng.uniform(w * 0.1 + margin, w * 0.9 - margin), rng.uniform(h * 0.1 + margin, h * 0.9 - margin)
        if inside is None or inside[min(h - 1, int(y)), min(w - 1, int(x))]:
            return x, y
    ys, xs = np.nonzero(inside)  # a small or off-centre area: any of its pixels
    i = int(rng.integers(len(xs)))
    return float(xs[i]) + 0.5, float(ys[i]) + 0.5


def paint(
    rng: np.random.Generator, img: Image.Image, kind: str, area: np.ndarray | None = None
) -> tuple[Image.Image, np.ndarray]:
    """``img`` (RGB) with one painted defect of ``kind``, and the defect's boolean mask at the image's size; with an
    inspection ``area`` (``linewatch.vision.area``), the defect is centred in it and its mask cut to it."""
    img = img.convert("RGB")
    w, h = img.size
    inside = at_size(area, w, h) if area is not None else None
    side = min(w, h)
    arr = np.asarray(img, dtype=np.float32)
    mask = Image.new("L", img.size, 0)
    draw_m = ImageDraw.Draw(mask)
    if kind == "scratch":
        length = rng.uniform(0.12, 0.3) * side
        width = max(1, int(round(rng.uniform(0.006, 0.015) * side)))
        cx, cy = _place(rng, w, h, length / 2, inside)
        t = rng.uniform(0, np.pi)
        bend = rng.uniform(-0.3, 0.3)
        pts = []
        for s in np.linspace(-0.5, 0.5, 5):
            a = t + bend * s
            pts.append((cx + s * length * np.cos(a), cy + s * length * np.sin(a)))
        draw_m.line(pts, fill=255, width=width, joint="curve")
        m = np.asarray(mask) > 0
        local = float(arr[m].mean()) if m.any() else 128.0
        shift = rng.uniform(50, 100) * (-1 if local > 110 else 1)
        out = arr.copy()
        out[m] = np.clip(arr[m] + shift, 0, 255)
        painted = Image.fromarray(out.astype(np.uint8))
    elif kind == "patch":
        r = rng.uniform(0.04, 0.09) * side
        cx, cy = _place(rng, w, h, r, inside)
        sx, sy = _place(rng, w, h, r)
        while np.hypot(sx - cx, sy - cy) < 2 * r:  # from elsewhere on the part
            sx, sy = _place(rng, w, h, r)
        box = [int(sx - r), int(sy - r), int(sx + r), int(sy + r)]
        piece = img.crop(box).rotate(rng.uniform(30, 330), resample=Image.BILINEAR)
        factor = rng.uniform(0.7, 1.3)
        piece = Image.fromarray(np.clip(np.asarray(piece, dtype=np.float32) * factor, 0, 255).astype(np.uint8))
        pts = [
            (cx + r * 0.95 * np.cos(a) * rng.uniform(0.6, 1.0), cy + r * 0.95 * np.sin(a) * rng.uniform(0.6, 1.0))
            for a in np.linspace(0, 2 * np.pi, 9)[:-1]
        ]
        draw_m.polygon(pts, fill=255)
        painted = img.copy()
        at = (int(cx - r), int(cy - r))
        painted.paste(piece, at, mask.crop((at[0], at[1], at[0] + piece.width, at[1] + piece.height)))
    elif kind == "stain":
        r = rng.uniform(0.04, 0.08) * side
        cx, cy = _place(rng, w, h, r, inside)
        box = [cx - r, cy - r * rng.uniform(0.5, 1.0), cx + r, cy + r * rng.uniform(0.5, 1.0)]
        draw_m.ellipse(box, fill=255)
        alpha = np.asarray(mask.filter(ImageFilter.GaussianBlur(r / 4)), dtype=np.float32)[..., None] / 255
        alpha *= rng.uniform(0.6, 0.9)
        tint = rng.uniform(-90, 90, 3) if rng.random() < 0.5 else np.full(3, rng.choice([-1, 1]) * rng.uniform(50, 90))
        out = np.clip(arr + alpha * tint, 0, 255)
        painted = Image.fromarray(out.astype(np.uint8))
    else:
        raise ValueError(f"unknown defect kind {kind!r}: one of {', '.join(KINDS)}")
    painted_mask = np.asarray(mask) > 0
    return painted, painted_mask if inside is None else painted_mask & inside


@dataclass
class SelfCheck:
    image_auroc: float  # held-out good images against painted copies
    pixel_auroc: float | None  # painted pixels against the rest, on the maps at model input size
    good: int
    painted: int
    seconds: float

    def to_dict(self) -> dict:
        """The figures (rounded), without the time it took: the same model gives the same dict."""
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items() if k != "seconds"}


def painted_copies(
    img: Image.Image, index: int, per_image: int = 1, seed: int = 0, area: np.ndarray | None = None
) -> list[tuple[Image.Image, np.ndarray]]:
    """``per_image`` painted copies of the ``index``-th held-out image (the kinds in turn), with their masks; the same
    copies whenever they are made again (the random stream is seeded by ``seed`` and ``index``); with an inspection
    ``area``, painted in it."""
    rng = np.random.default_rng([seed, index])
    return [paint(rng, img, KINDS[(index * per_image + j) % len(KINDS)], area) for j in range(per_image)]


MAX_IMAGES = 100  # held-out images the check uses at most: enough for the AUROC, and memory stays flat
CHECK_BATCH = 4  # images per backbone pass while checking: its activations are the check's largest transient
WORKING = 2  # images are kept at most this many times the model's input side (``working_copy``)


@dataclass
class Painted:
    """Held-out good images (working copies), made once and checked against several models. Their painted copies are
    made again, a few images at a time, for each model checked (``painted_copies``, reproducible): kept all at once
    they took more memory than the training itself (300 copies of a 900 px photo: 1.7 GB)."""

    images: list[Image.Image]
    per_image: int = 1
    seed: int = 0
    area: np.ndarray | None = None  # the models' inspection area: defects are painted in it

    @property
    def painted(self) -> int:
        return len(self.images) * self.per_image

    def chunks(self, size: int = 8) -> Iterator[list[tuple[Image.Image, np.ndarray]]]:
        """The painted copies with their masks, the copies of ``size`` images at a time."""
        for start in range(0, len(self.images), size):
            stop = min(start + size, len(self.images))
            yield [
                c
                for i in range(start, stop)
                for c in painted_copies(self.images[i], i, self.per_image, self.seed, self.area)
            ]


def working_copy(img: Image.Image, max_side: int | None) -> Image.Image:
    """``img`` reduced (aspect kept, antialiased) so that its longer side is at most ``max_side``: the model resizes
    every image to its input anyway, and a painted defect's size is relative to the image, so a working copy at twice
    the input size checks the same thing in a fraction of the memory (a 900 px photo: 2.4 MB, at 512 px 0.8 MB)."""
    if not max_side or max(img.size) <= max_side:
        return img
    f = max_side / max(img.size)
    return img.resize((max(1, round(img.width * f)), max(1, round(img.height * f))), Image.BILINEAR)


def prepare(
    good: Sequence[Source],
    per_image: int = 1,
    seed: int = 0,
    max_images: int = MAX_IMAGES,
    max_side: int | None = None,
    area: np.ndarray | None = None,
) -> Painted | None:
    """Read ``good`` (at most ``max_images``, spread evenly over them) to be painted ``per_image`` times each; None
    when fewer than 2 of them can be read. With ``max_side``, images are read and kept at most that large
    (``working_copy``); with an inspection ``area``, defects are painted in it."""
    images = []
    for src in spread(good, max_images):
        try:
            images.append(working_copy(open_image(src, draft_size=max_side), max_side))
        except ImageError:
            continue
    if len(images) < 2:
        return None
    return Painted(images, per_image, seed, area)


def self_check(
    det,
    good: Sequence[Source] = (),
    per_image: int = 1,
    seed: int = 0,
    progress=None,
    max_images: int = MAX_IMAGES,
    prepared: Painted | None = None,
) -> SelfCheck | None:
    """Score ``good`` held-out images (at most ``max_images``, spread evenly over them) and painted copies of them
    with a fitted detector (or runtime model); None when fewer than 2 of them can be read. ``prepared`` (from
    ``prepare``) checks images already painted instead, the same ones for every model it is given to."""
    import time

    started = time.perf_counter()
    if prepared is None:
        area = det.inspection_area() if hasattr(det, "inspection_area") else None
        prepared = prepare(good, per_image, seed, max_images, WORKING * det.preprocess.input_size, area)
        if prepared is None:
            return None
    check = self_check_many([det], prepared, progress)[0]
    check.seconds = time.perf_counter() - started
    return check


def self_check_many(
    dets: Sequence, prepared: Painted, progress=None, extra: Sequence = (), raw: list | None = None
) -> list[SelfCheck]:
    """``self_check`` of each of ``dets`` on the same ``prepared`` images. Models that share one backbone and input
    (PatchCore with banks of several sizes) are scored from one backbone pass per image, and the copies are painted
    once for all of them; each check's ``seconds`` is then the time of the shared pass.

    ``extra`` models are scored in the same pass for their image scores only (a combined model's PaDiM: its check is
    made later from both parts' scores). ``raw``, when given, receives the raw image scores of every model, ``dets``
    then ``extra``: one (held-out good images' scores, painted copies' scores) pair each."""
    import time

    started = time.perf_counter()
    release_freed_memory()  # before the painted copies' maps, the largest arrays after training's
    pre = dets[0].preprocess
    everyone = [*dets, *extra]
    good_scores = [[s for s, _ in per] for per in zip(*_scored(everyone, prepared.images), strict=True)]
    bad_scores: list[list[float]] = [[] for _ in everyone]
    # the painted copies' maps and masks, written in place into one array each (allocated with the first map):
    # lists stacked at the end held every map twice at the peak
    maps: list[np.ndarray] = []
    masks = np.empty(0, bool)
    n = 0
    for chunk in prepared.chunks():
        for per, (_, mask) in zip(_scored(everyone, [img for img, _ in chunk]), chunk, strict=True):
            if not maps:
                maps = [np.empty((prepared.painted, *amap.shape), np.float32) for _, amap in per[: len(dets)]]
                masks = np.empty((prepared.painted, *per[0][1].shape), bool)
            for i, (score, amap) in enumerate(per):
                bad_scores[i].append(score)
                if i < len(dets):
                    maps[i][n] = amap
            masks[n] = pre.mask_to_input(mask)
            n += 1
        release_freed_memory()  # each chunk's images, batches and distance products: freed, given back
        if progress:
            progress("score", n, prepared.painted)
    masks = masks[:n]
    inside = dets[0].area_input() if hasattr(dets[0], "area_input") else None
    if inside is not None and n:  # the pixels the models inspect: those outside score 0 and are never defects
        inside = inside > 0
        masks, maps = masks[:, inside], [m[:n][:, inside] for m in maps]
        n = len(masks)
    y = np.r_[np.zeros(len(prepared.images)), np.ones(n)]
    seconds = time.perf_counter() - started
    if raw is not None:
        raw.extend(zip(good_scores, bad_scores, strict=True))
    out = []
    for i, (good, bad) in enumerate(zip(good_scores[: len(dets)], bad_scores[: len(dets)], strict=True)):
        image = rank_auroc(y, np.r_[good, bad])
        pixel = rank_auroc(masks, maps[i][:n], overwrite=True) if 0 < masks.sum() < masks.size else None
        maps[i] = np.empty(0, np.float32)  # each model's maps freed once counted
        out.append(SelfCheck(image, pixel, len(good), len(bad), seconds))
    return out


def _shares_backbone(dets: Sequence) -> bool:
    first = dets[0]
    return len(dets) > 1 and all(
        hasattr(d, "_score_features")
        and getattr(d, "extractor_", None) is not None
        and d.extractor_ is first.extractor_
        and d.preprocess.input_hw == first.preprocess.input_hw
        and d.params_["center_crop"] == first.params_["center_crop"]
        for d in dets
    )


def _scored(dets: Sequence, images: list) -> list[tuple[tuple[float, np.ndarray], ...]]:
    """Per image, each model's (raw score, map at input resolution); one backbone pass per image when they share it."""
    if not _shares_backbone(dets):
        per_det = [[(s, m) for s, m, *_ in d.raw_scores(images)] for d in dets]
        return list(zip(*per_det, strict=True))
    import torch

    from linewatch.vision.batches import iter_batches
    from linewatch.vision.detector import score_on_one_pass, use_all_cores

    first = dets[0]
    out = []
    use_all_cores()
    with torch.inference_mode():
        for batch in iter_batches(images, first.preprocess, min(first.params_["batch_size"], CHECK_BATCH)):
            res = score_on_one_pass(dets, torch.from_numpy(batch.inputs))
            out += [tuple((float(r[0][i]), r[1][i].numpy()) for r in res) for i in range(len(batch.sizes))]
    return out
