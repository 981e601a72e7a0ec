"""PatchCore's settings chosen from the good images alone: the memory bank's size and, on request, the tapped layers.

Candidates are ranked by the self-check (``linewatch.vision.selfcheck``): defects painted on the held-out good images,
scored against the same images unpainted, so the choice needs no real defect; the ranking uses how well the painted
pixels are found (``score_of``). Every candidate is checked on the same
painted images (one seed), which makes the comparison paired.

- **Bank size** (``auto="bank"``): the greedy coreset picks its entries in order, so one selection of twice
  ``max_bank`` entries gives both banks: its first half and the whole (the first half is close to, not the same as,
  a ``max_bank`` run's: the pool keeps other patches for a larger target). Both are checked; the larger bank is kept
  when it is clearly better (``margin_for``), because it doubles the search per image, or, below a saturated
  self-check, when it is not clearly worse (``choose``). A simple part covered by
  ``max_bank`` entries keeps them; a varied one (a textured surface, many looks of good) gets the larger bank. When
  the training set is too small to fill more than ``max_bank`` entries (``coreset_ratio`` of its patches), there is
  nothing to choose and the fit is the plain one.
- **Layers** (``auto="full"``): also the coarser layer set (strides 8 and 16, as anomalib taps them) besides the
  default's finer one (4, 8, 16), one more fit, with the same bank sizes (its share of the fewer patches is scaled
  up to match). A fine grid localises thin defects sharply; on a busy texture it can
  also make good patches look rare, which the coarser grid smooths away.
- **Resolution** (``auto="full"``): also a finer input, ``image_size`` times 5/4 (256 -> 320 px; with
  ``keep_aspect`` as many more pixels in the same shape), the default layers, one more fit with the same bank sizes.
  Thin defects (cracks, fine scratches) that a 256 px input blurs into a pixel or two cover more patches; each
  image costs about (5/4)^2 = 1.56 times the patches to score, which is why it too must win by the margin.
- **Resolution, cheaply** (``auto="size"``): the same two inputs compared before the real fit, each a PatchCore fitted
  on ``SUBSET_TRAIN`` training images spread over the set and checked on ``SUBSET_HELD`` held-out images painted
  ``PER_IMAGE`` times (``choose_size``); the chosen input then gets the bank choice on the whole set, one full fit.
  The subset's choice agreed with ``full``'s on magnetic_tile and bottle in 4 of 4 spreads of 64 images, for 18-23 s
  (docs/benchmarks.md, "The input size chosen on a subset of the images").

The default candidate (the given layers, ``max_bank`` entries) stays unless another scores clearly higher: by
``MARGIN``, or by more where few held-out images make the self-check noisy (``margin_for``). A change must pay for
its cost. The choice, every candidate's figures, the reason and the seconds it
took go into ``train_info_["auto"]`` (the manifest's ``training``).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import torch

from linewatch.vision.area import area_of
from linewatch.vision.batches import Source
from linewatch.vision.detector import MIN_TRAIN_IMAGES, Detector, Progress
from linewatch.vision.heap import release_freed_memory
from linewatch.vision.images import spread
from linewatch.vision.selfcheck import WORKING, SelfCheck, prepare, self_check_many

MARGIN = 0.003  # how much higher a candidate's self-check score must be to replace the default, at least
SATURATED = 0.98  # a default self-check this high leaves a larger bank no room to show a gain (``choose``)
NOISE = 0.02  # ... and NOISE / sqrt(held-out images): an AUROC's sampling error shrinks with the square root
PER_IMAGE = 3  # painted copies per held-out image while choosing (less noise than the plain check's one)
COARSE = (8, 16)  # the strides of the second layer set
FINER = 1.25  # the finer resolution candidate, as a multiple of image_size (rounded to 32 px)
MAX_SIZE = 2048  # image_size's upper bound: no finer candidate above it
SUBSET_TRAIN = 64  # ``auto="size"``: training images the two inputs are fitted on ...
SUBSET_HELD = 24  # ... and held-out images they are checked on (PER_IMAGE painted copies each)


@dataclass
class Trial:
    layers: list[str]
    strides: list[int]
    bank: int | None  # None for PaDiM
    image_auroc: float | None
    pixel_auroc: float | None
    score: float | None
    image_size: int | None = None  # the candidate's input size (None in manifests from before it was a candidate)
    method: str = "patchcore"  # PatchCore's candidates, or PaDiM's in the method choice (``methodchoice``)

    def to_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def score_of(check) -> float | None:
    """What candidates are ranked by: the self-check's pixel AUROC (its image AUROC where it has no pixel figure).

    The pixel AUROC rests on every pixel of every painted image, the image AUROC on a few dozen scores: on bottle the
    latter moved by 0.03 between two banks that score the same on real defects, and on magnetic_tile it preferred the
    coarse layers, which are worse on the real test set (AUPRO 0.54 against 0.61). The pixel AUROC ranked all four
    comparisons measured as the real test set did (docs/benchmarks.md, "Automatic choice")."""
    if check is None:
        return None
    return check.image_auroc if check.pixel_auroc is None else check.pixel_auroc


def _relabel(progress: Progress | None, name: str | None) -> Progress | None:
    if progress is None or name is None:
        return progress
    return lambda stage, done, total: progress(f"{stage} ({name})", done, total)


def fit_auto(
    det,
    images: Sequence[Source],
    progress: Progress | None = None,
    fingerprint: str | None = None,
    on_trial: Callable[[object, Trial], None] | None = None,
):
    """Fit ``det`` (a PatchCore with ``auto`` on) with the settings its self-check prefers; returns ``det``.

    ``on_trial(candidate, trial)`` is called with each candidate model as it was checked (a benchmark scores it on
    real defects there); it must not change the model."""
    started = time.perf_counter()
    user = det.get_params()
    base = det._validate_params()
    calibrate = det._calibrate_on_fit  # False: the caller sets the thresholds (a combined model, once for both parts)
    mode = base["auto"]
    size = base["image_size"]
    size_choice = None
    if mode == "size" and finer_size(size) <= MAX_SIZE:
        size_choice = choose_size(det, base, images, progress)
    first = size_choice["chosen"] if size_choice else size
    sets: list[tuple[list[str] | None, tuple[int, ...], int]] = [(base["layers"], det.default_strides, first)]
    if mode == "full" and base["layers"] is None:
        sets.append((None, COARSE, size))
    if mode == "full" and finer_size(size) <= MAX_SIZE:
        sets.append((base["layers"], det.default_strides, finer_size(size)))
    big = 2 * base["max_bank"]
    several = len(sets) > 1
    trials: list[Trial] = []
    checks = []
    owners: list[int] = []  # the fitted layer set of each trial
    fitted = []
    held: list[Source] = []
    prepared = None  # the painted held-out images, the same for every candidate
    # a model fitted on the default candidate's tapped pass (a combined model's PaDiM), scored in the bank choice's
    # pass so that the caller's final check needs no pass of its own (``choice_companion``); one layer set only
    companion = getattr(det, "choice_companion", None) if len(sets) == 1 else None
    extra: list = []
    raw: list = []  # per bank size then the companion: (good, painted) raw image scores
    for layers, strides, px in sets:
        # a coarser grid has fewer patches: the same share of them would give a smaller bank, and the bank sizes
        # compared stay the default's (the bank is what a search costs); a finer input has more, same cap
        ratio = min(1.0, base["coreset_ratio"] * (strides[0] / det.default_strides[0]) ** 2)
        crop = base["center_crop"] and round(base["center_crop"] * px / size)
        child = type(det)(
            **{
                **base,
                "auto": "off",
                "self_check": False,
                "max_bank": big,
                "layers": layers,
                "coreset_ratio": ratio,
                "image_size": px,
                "center_crop": crop or None,
            }
        )
        if strides != det.default_strides:
            child.default_strides = strides
        child._calibrate_on_fit = False  # thresholds are set once, for the chosen bank
        child.feature_taps = () if fitted else det.feature_taps  # the default layers and input size
        name = None
        if several:
            name = "layers " + ",".join(map(str, strides)) + (f", {px} px" if px != size else "")
        child.fit(images, _relabel(progress, name), fingerprint)
        _, held = child.split(images)
        full = child.memory_bank_.clone()
        sizes = sorted({min(base["max_bank"], full.shape[0]), full.shape[0]})
        fitted.append((child, full))
        if len(sizes) == 1 and not several:
            break  # nothing to choose: the plain fit
        if prepared is None and held:
            # kept at twice the largest candidate's input side (the finer input's, when there is one)
            largest = child.preprocess.input_size * max(c[2] for c in sets) / px
            prepared = prepare(
                held, PER_IMAGE, base["seed"], max_side=WORKING * math.ceil(largest), area=child.inspection_area()
            )
        # the bank sizes are checked on one backbone pass: a smaller bank is the greedy order's head of the full one
        banks = [child if k == full.shape[0] else _with_bank(child, full[:k]) for k in sizes]
        label = _relabel(progress, " and ".join(map(str, sizes)) + " entries")
        if prepared and companion is not None:
            scored_beside = companion(child)
            extra = [scored_beside] if scored_beside is not None else []
        found = self_check_many(banks, prepared, label, extra, raw) if prepared else [None] * len(banks)
        for k, model, check in zip(sizes, banks, found, strict=True):
            trials.append(Trial(list(child.params_["layers"]), list(strides), k, *_figures(check), score_of(check), px))
            checks.append(check)
            owners.append(len(fitted) - 1)
            if on_trial is not None:
                on_trial(model, trials[-1])

    if not trials:  # one layer set, one bank size
        child, _ = fitted[0]
        reason = (
            f"no choice: the {child.train_info_['train_images']} training images fill a bank of "
            f"{child.memory_bank_.shape[0]} entries at most (coreset_ratio), not more than bank_size"
        )
        if calibrate:
            child._calibrate(held, progress)
        check = child._self_check(held, progress) if held and base["self_check"] else None
        chosen_i = None
        child.params_["max_bank"] = base["max_bank"]
    else:
        chosen_i, reason = choose(trials, checks[0].good if checks[0] is not None else 1)
        t = trials[chosen_i]
        child, full = fitted[owners[chosen_i]]
        if child.memory_bank_.shape[0] != t.bank:
            child.use_bank(full[: t.bank])
        if calibrate:
            child._calibrate(held, _relabel(progress, "chosen"))
        check = checks[chosen_i]
        child.params_["max_bank"] = t.bank
        if extra and check is not None:
            child._choice_scores = ChoiceScores(check, raw[chosen_i], extra[0], raw[-1])

    seconds = round(time.perf_counter() - started, 2)
    info = dict(child.train_info_)
    info["seconds"] = seconds
    info.pop("self_check", None)
    info.pop("self_check_seconds", None)
    if check is not None:
        info["self_check"] = check.to_dict()
        info["self_check_seconds"] = round(check.seconds, 2)
    info["auto"] = {
        "mode": mode,
        "chosen": {
            "layers": list(child.params_["layers"]),
            "bank": int(child.memory_bank_.shape[0]),
            "image_size": int(child.params_["image_size"]),
        },
        "reason": reason,
        "candidates": [t.to_dict() for t in trials],
        "chosen_candidate": chosen_i,
        "seconds": seconds,
    }
    if size_choice is not None:
        info["auto"]["size_choice"] = size_choice
    child.params_["auto"] = mode
    child.params_["self_check"] = base["self_check"]
    child._search_why = getattr(det, "_search_why", None)  # how the caller's ``search="auto"`` was resolved
    child.train_info_ = child._noted(info)
    child.__dict__.pop("default_strides", None)
    child.__dict__.pop("_calibrate_on_fit", None)  # the caller's setting stays (a refit calibrates as the first fit)
    det.__dict__.update(child.__dict__)
    det.set_params(**user)  # the constructor's parameters stay as given; params_ holds the chosen ones
    return det


@dataclass
class ChoiceScores:
    """The chosen candidate's self-check from the bank choice's pass, with the raw image scores behind it and those of
    the companion scored beside it (``choice_companion``): each a (held-out good images, painted copies) pair."""

    check: SelfCheck  # the chosen candidate's
    scores: tuple[list[float], list[float]]
    companion: Detector
    companion_scores: tuple[list[float], list[float]]


def choose_size(det, base: dict, images: Sequence[Source], progress: Progress | None = None) -> dict:
    """``auto="size"``'s input size: ``image_size`` or ``finer_size`` of it, whichever finds defects painted on held-out
    good images better, from PatchCore fits on a subset (the default layers and bank size, no threshold, no choice).

    ``SUBSET_TRAIN`` training images spread over the set are fitted at each size; ``SUBSET_HELD`` held-out images,
    painted ``PER_IMAGE`` times with the same defects for both sizes, check each fit (the paired comparison of every
    automatic choice). The finer input is kept when its self-check pixel AUROC (``score_of``) is higher by
    ``margin_for`` the held-out images: it costs about 1.56 times the patches per image, so it must pay for them.
    Returns what was chosen, why, each size's figures and the seconds it took (the manifest's
    ``training.auto.size_choice``)."""
    started = time.perf_counter()
    size = base["image_size"]
    sizes = [size, finer_size(size)]
    splitter = type(det)(**{**base, "auto": "off"})
    splitter.params_ = base
    train, held = splitter.split(images)  # the held-out images the real fit will hold out
    subset = spread(train, SUBSET_TRAIN)
    prepared = None
    if held:
        # kept at twice the finer input's side (as ``fit_auto`` keeps them for its finer candidate)
        prepared = prepare(
            spread(held, SUBSET_HELD), PER_IMAGE, base["seed"], WORKING * sizes[-1] * 2, area=area_of(base)
        )
    result = {"train_images": len(subset), "held_out_images": 0, "sizes": sizes, "candidates": []}
    if prepared is None or len(subset) < MIN_TRAIN_IMAGES:
        result.update(
            chosen=size,
            reason=f"no choice: fewer than 2 readable held-out good images or {MIN_TRAIN_IMAGES} training images; "
            f"{size} px stays",
            seconds=round(time.perf_counter() - started, 2),
        )
        return result
    result["held_out_images"] = len(prepared.images)
    checks = []
    for px in sizes:
        begun = time.perf_counter()
        crop = base["center_crop"] and round(base["center_crop"] * px / size)
        model = type(det)(
            **{
                **base,
                "auto": "off",
                "self_check": False,
                "holdout": 0.0,
                "image_size": px,
                "center_crop": crop or None,
            }
        )
        model._calibrate_on_fit = False  # the subset's fit is only checked: no threshold
        model.fit(subset, _relabel(progress, f"input size, {px} px"))
        fitted = time.perf_counter()
        check = self_check_many([model], prepared, _relabel(progress, f"input size, {px} px"))[0]
        checks.append(check)
        result["candidates"].append(
            {
                "image_size": px,
                "image_auroc": round(check.image_auroc, 4) if check.image_auroc is not None else None,
                "pixel_auroc": round(check.pixel_auroc, 4) if check.pixel_auroc is not None else None,
                "fit_seconds": round(fitted - begun, 2),
                "check_seconds": round(time.perf_counter() - fitted, 2),
            }
        )
        del model
    release_freed_memory()
    margin = margin_for(len(prepared.images))
    default, finer = (score_of(c) for c in checks)
    if finer is not None and default is not None and finer >= default + margin:
        chosen = sizes[1]
        reason = (
            f"{sizes[1]} px: its self-check on {len(subset)} training images, {finer:.4f}, is at least {margin:.4f} "
            f"above {size} px's {default:.4f}"
        )
    else:
        chosen = size
        reason = (
            f"{size} px stays: {sizes[1]} px's self-check on {len(subset)} training images, "
            f"{'-' if finer is None else f'{finer:.4f}'}, is not {margin:.4f} above {size} px's "
            f"{'-' if default is None else f'{default:.4f}'}"
        )
    result.update(
        chosen=chosen, reason=reason, margin=round(margin, 4), seconds=round(time.perf_counter() - started, 2)
    )
    return result


def _with_bank(det, bank: torch.Tensor):
    """A copy of fitted PatchCore ``det`` that scores with ``bank``, sharing its backbone; ``det`` is unchanged."""
    other = copy.copy(det)
    other.use_bank(bank)
    return other


def finer_size(size: int) -> int:
    """The finer resolution candidate for ``image_size`` ``size``: ``FINER`` times it, a multiple of 32 px (the
    backbone's coarsest stride) above ``size`` (a center crop grows in proportion)."""
    return max((size // 32 + 1) * 32, int(size * FINER / 32 + 0.5) * 32)


def _figures(check) -> tuple[float | None, float | None]:
    return (check.image_auroc, check.pixel_auroc) if check is not None else (None, None)


def margin_for(n_good: int) -> float:
    """How much higher than the default's a candidate's self-check score must be, with ``n_good`` held-out images:
    ``MARGIN``, or more where few images make the figure noisy (0.010 with 4 images, 0.0044 with 21).

    Measured (docs/benchmarks.md, "Automatic choice"): doubling the bank moved the self-check's pixel AUROC by 0.0005
    on bottle and 0.0001 on the synthetic set, whose real figures it did not change either, and by 0.0065 on
    magnetic_tile, where it lifted image AUROC by 0.016 and AUPRO by 0.025. A larger bank holds the smaller one, so
    every patch's distance can only fall: a saturated bank moves the figure by next to nothing."""
    return max(MARGIN, NOISE / math.sqrt(max(n_good, 1)))


def grows_bank(ref: Trial, other: Trial) -> bool:
    """Whether ``other`` is ``ref`` with a larger bank: the same method, layers and input, so that its bank holds
    ``ref``'s (the greedy order's head) and no patch can score higher with it."""
    return (
        other.method == ref.method == "patchcore"
        and other.layers == ref.layers
        and other.image_size == ref.image_size
        and other.bank is not None
        and ref.bank is not None
        and other.bank > ref.bank
    )


def choose(trials: Sequence[Trial], n_good: int = 100) -> tuple[int, str]:
    """The index of the chosen trial and why. Trial 0 is the default; another replaces it only when its self-check
    score is at least ``margin_for(n_good)`` higher (the best such one; the earlier, cheaper one on a tie).

    One exception, for the bank: where the default's self-check is below ``SATURATED``, the larger bank of the same
    layers and input is taken unless it scores lower by the margin. Its bank holds the smaller one, so it can only
    find good patches closer; on magnetic_tile it was better on real defects in every one of four fits that differed
    by float rounding alone (AUPRO +0.026 to +0.048), while the self-check's lead, +0.010 to +0.011 in three of them,
    was -0.001 in the fourth: below saturation the painted defects are too few and too unlike real ones to resolve
    that gain every time (docs/benchmarks.md, "A steadier bank choice"). Above it (bottle 0.987, the synthetic set
    0.994), the smaller bank scores as well on real defects and costs half the search, so it must be beaten."""
    margin = margin_for(n_good)
    ref = trials[0]
    if ref.score is None:
        return 0, "no held-out good images to check candidates on: the default settings stay"
    others = [i for i, t in enumerate(trials) if i and t.score is not None]
    if not others:
        return 0, "no other candidate could be checked: the default settings stay"
    base, why = 0, ""
    if ref.score < SATURATED:
        grown = [i for i in others if grows_bank(ref, trials[i]) and trials[i].score > ref.score - margin]
        if grown:
            base = max(grown, key=lambda i: trials[i].bank)
            why = (
                f"the default's self-check {ref.score:.3f} is below {SATURATED} and the bank of "
                f"{trials[base].bank} entries, which holds the default's, scores {trials[base].score:.3f} "
                f"(not {margin:.3f} lower)"
            )
    best = max(others, key=lambda i: (trials[i].score, -i))
    if best != base and trials[best].score >= trials[base].score + margin:
        return best, (
            f"self-check {trials[best].score:.3f} against the default's {ref.score:.3f} (at least {margin:.3f} higher)"
            if base == 0
            else f"self-check {trials[best].score:.3f} against {trials[base].score:.3f} for the larger bank "
            f"(at least {margin:.3f} higher; {why})"
        )
    if base:
        return base, why
    return 0, (
        f"no candidate scored {margin:.3f} above the default's self-check {ref.score:.3f} "
        f"(best other: {trials[best].score:.3f})"
    )
