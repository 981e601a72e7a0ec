"""The method chosen from the good images alone: PatchCore or PaDiM, whichever finds defects painted on the held-out
good images better (``method="auto"``).

The two suit different parts. PatchCore's memory bank of good patches (with its own automatic bank size) leads on
objects whose good patches may sit anywhere (MVTec bottle: pixel AUROC 0.981 against PaDiM's 0.973); PaDiM's Gaussian
per patch position leads on aligned surfaces whose look depends on the position (magnetic_tile: image AUROC 0.917
against 0.878, trained in a fraction of the time). Which a new part is cannot be told from its name, so both are
fitted and checked on the same painted copies of the held-out good images (``selfcheck.prepare``, three per image,
one seed); the ranking is the automatic choice's (``autochoice.score_of``: the pixel AUROC), and PatchCore stays
unless PaDiM scores higher by that choice's margin (``autochoice.choose``).

A ``MethodChoice`` is a detector of its own (method ``auto``, saved and loaded as such): after ``fit`` it scores,
saves and exports through the chosen candidate, ``method_`` says which one, and ``train_info_["method_choice"]``
keeps both candidates' figures, the reason and the seconds it took. Refitting chooses again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from linewatch.errors import LinewatchError
from linewatch.vision.appearance import brightness, image_vector
from linewatch.vision.autochoice import PER_IMAGE, Trial, _figures, _relabel, choose, margin_for, score_of
from linewatch.vision.batches import Source, iter_batches
from linewatch.vision.cpu import resolve_search
from linewatch.vision.detector import Detector, Progress, score_on_one_pass, use_all_cores
from linewatch.vision.methods import AutoParams, PadimParams, PatchCoreParams
from linewatch.vision.metrics import rank_auroc
from linewatch.vision.selfcheck import WORKING, SelfCheck, prepare, self_check_many
from linewatch.vision.thresholds import calibrate

CANDIDATES = {"patchcore": PatchCoreParams, "padim": PadimParams}
RESOLVED = ("layers", "max_bank", "image_size")  # what a candidate's fit may resolve or choose


def _candidate(method: str, params: dict) -> Detector:
    from linewatch.vision.padim import Padim
    from linewatch.vision.patchcore import PatchCore

    cls = {"patchcore": PatchCore, "padim": Padim}[method]
    return cls(**{k: v for k, v in params.items() if k in CANDIDATES[method].specs()})


def _restored(owner: Detector, method: str, tensors: dict[str, torch.Tensor]) -> Detector:
    """The ``method`` part of a loaded ``owner`` (its resolved parameters, input and backbone), from the part's
    tensors (names without the method's prefix)."""
    part = _candidate(method, owner.params_)
    part.params_ = {k: v for k, v in owner.params_.items() if k in CANDIDATES[method].specs()}
    part.input_shape_ = owner.input_shape_
    part.extractor_ = owner.extractor_
    part._restore(tensors)
    return part


def _resolved(params: dict, part: Detector) -> dict:
    """``params`` with what ``part``'s fit resolved or chose."""
    return {**params, **{k: part.params_[k] for k in RESOLVED if k in part.params_}}


def _fit_pair(
    owner: Detector,
    images: list,
    progress: Progress | None,
    fingerprint: str | None,
    patchcore_params: dict,
    follow: bool,
    calibrate: bool = True,
    companion: bool = False,
) -> tuple[Detector, Detector | None, list]:
    """(PatchCore, PaDiM, held-out images) fitted on ``images`` with ``owner``'s parameters. PaDiM accumulates from
    PatchCore's backbone pass and is fitted only when there are held-out images (it is weighed or checked on them).
    If PatchCore's automatic choice ended on other settings than the tapped ones, PaDiM gets a fit of its own: with
    PatchCore's resolved layers and input when ``follow`` (the two score together), else with ``owner``'s. Without
    ``calibrate`` neither part sets its thresholds (the caller does, from one pass over the held-out images). With
    ``companion``, PaDiM is finished before PatchCore's bank choice and scored in its self-check pass
    (``PatchCore.choice_companion``), where that pass is made."""
    p = owner.params_
    _, held = owner.split(images)
    patchcore = _candidate("patchcore", patchcore_params)
    padim = _candidate("padim", {**p, "self_check": False}) if held else None
    patchcore._calibrate_on_fit = calibrate
    if padim is not None:
        padim._calibrate_on_fit = calibrate
    patchcore.feature_taps = (padim.tap(),) if padim is not None else ()
    tapped = False

    def finish(source: Detector) -> Detector | None:
        nonlocal tapped
        tapped = padim.finish_tap(source, held, _relabel(progress, "padim"))
        return padim if tapped else None

    patchcore.choice_companion = finish if companion and padim is not None else None
    patchcore.fit(images, _relabel(progress, "patchcore"), fingerprint)
    patchcore.feature_taps, patchcore.choice_companion = (), None
    if padim is not None and not tapped and not padim.finish_tap(patchcore, held, _relabel(progress, "padim")):
        padim = _candidate("padim", {**(_resolved(p, patchcore) if follow else p), "self_check": False})
        padim._calibrate_on_fit = calibrate
        padim.fit(images, _relabel(progress, "padim"), fingerprint)
    return patchcore, padim, held


def _take_resolved(owner: Detector, part: Detector) -> None:
    """What ``part``'s fit resolved or chose (layers, the bank, the input size) becomes ``owner``'s too."""
    for k in RESOLVED:
        if k in part.params_:
            owner.params_[k] = part.params_[k]


def _share_backbone(patchcore: Detector, padim: Detector) -> None:
    """PaDiM scores from PatchCore's backbone (the same backbone and layers: one copy, as saved)."""
    if padim.extractor_ is not patchcore.extractor_:
        padim.extractor_ = patchcore.extractor_
        padim._build()


#: PaDiM's share in a combined model's image score, the default first: whole, half, none
PADIM_SHARES = (1.0, 0.5, 0.0)
#: resamples of the held-out images (each with its painted copies) a smaller share must win in ...
RESAMPLES = 400
#: ... this share of them at least, to replace the whole share
CONFIDENCE = 0.95


def choose_share(
    weights: np.ndarray, scores: tuple[Sequence, Sequence], companion_scores: tuple[Sequence, Sequence], n_good: int
) -> dict:
    """PaDiM's share in the image score, from the self-check: each of ``PADIM_SHARES`` weighs the two parts' raw
    scores on the held-out good images and their painted copies (``scores``: PatchCore's (good, painted),
    ``companion_scores``: PaDiM's, the copies in the order of their images; ``weights``: 1 / each part's image
    threshold). The whole share stays unless another tells the painted copies apart better by the automatic choice's
    margin (``margin_for(n_good)``) and in at least ``CONFIDENCE`` of ``RESAMPLES`` resamples of the held-out images
    (each drawn with its own copies, the same draws for every share): an image AUROC over a few held-out images
    moves by a whole pair's worth (3 images and 9 copies: 0.037 a pair), which a margin alone does not cover.

    PaDiM's Gaussian per patch position adds to PatchCore where good parts are aligned (magnetic_tile: image AUROC
    0.880 with PatchCore alone, 0.913 with both), but where a part sits anywhere in the frame a position's Gaussian
    spreads over everything and its score is noise beside PatchCore's (bottle photos moved and turned at random:
    1.000 alone, 0.994 with both); the painted copies rank the shares as the real defects did on both
    (docs/benchmarks.md). Returns the share, the reason and each share's self-check image AUROC."""
    (good, bad), (other_good, other_bad) = scores, companion_scores
    n, m = len(good), len(bad)
    y = np.r_[np.zeros(n), np.ones(m)]
    own = np.r_[good, bad].astype(np.float32) * np.float32(weights[0])
    other = np.r_[other_good, other_bad].astype(np.float32) * np.float32(weights[1])
    summed = [own + np.float32(f) * other for f in PADIM_SHARES]
    aurocs = [float(rank_auroc(y, x)) for x in summed]
    margin = margin_for(n_good)
    # the resamples: held-out images drawn with replacement, each with its painted copies (image-major order)
    image_of = np.arange(m) * max(n, 1) // max(m, 1)
    copies = [np.flatnonzero(image_of == i) + n for i in range(n)]
    rng = np.random.default_rng(0)
    wins = np.zeros(len(PADIM_SHARES))
    for _ in range(RESAMPLES if n > 1 else 0):
        pick = rng.integers(0, n, n)
        rows = np.r_[pick, np.concatenate([copies[i] for i in pick])]
        if rows.size == n:  # no painted copy drawn (only when there are none)
            continue
        found = [rank_auroc(y[rows], x[rows]) for x in summed]
        wins += np.array([a > found[0] for a in found])
    won = wins / RESAMPLES
    able = [i for i in range(1, len(PADIM_SHARES)) if aurocs[i] >= aurocs[0] + margin and won[i] >= CONFIDENCE]
    chosen = max(able, key=lambda i: (aurocs[i], -i)) if able else 0
    best = max(range(1, len(PADIM_SHARES)), key=lambda i: (aurocs[i], -i))
    if chosen:
        reason = (
            f"self-check image AUROC {aurocs[chosen]:.3f} with PaDiM's share at {PADIM_SHARES[chosen]:g} against "
            f"{aurocs[0]:.3f} with the whole share (at least {margin:.3f} higher), higher in {won[chosen]:.0%} of "
            f"{RESAMPLES} resamples of the {n} held-out images"
        )
    elif aurocs[best] >= aurocs[0] + margin:
        reason = (
            f"PaDiM's share at {PADIM_SHARES[best]:g} scored {aurocs[best]:.3f} against the whole share's "
            f"{aurocs[0]:.3f} but was higher in only {won[best]:.0%} of {RESAMPLES} resamples of the {n} held-out "
            f"images (not {CONFIDENCE:.0%}): the whole share stays"
        )
    else:
        reason = (
            f"no smaller share scored {margin:.3f} above the whole share's self-check image AUROC {aurocs[0]:.3f} "
            f"(best other: {aurocs[best]:.3f})"
        )
    return {
        "share": PADIM_SHARES[chosen],
        "reason": reason,
        "candidates": [
            {"share": f, "image_auroc": round(a, 6), "resamples_won": round(float(w), 4)}
            for f, a, w in zip(PADIM_SHARES, aurocs, won, strict=True)
        ],
    }


class MethodChoice(Detector):
    method = "auto"
    default_strides = (4, 8, 16)

    Params = AutoParams

    def __init__(self, **params):
        super().__init__(**params)
        self.method_: str | None = None  # the chosen candidate's method
        self._chosen: Detector | None = None

    @property
    def is_fitted(self) -> bool:
        return super().is_fitted and self._chosen is not None

    def fit(self, images: Sequence[Source], progress: Progress | None = None, fingerprint: str | None = None):
        """Fit PatchCore and PaDiM on ``images`` and keep the one the self-check prefers; returns ``self``."""
        started = time.perf_counter()
        p = self.params_ = self._validate_params()
        self.extractor_, self._chosen, self.method_ = None, None, None
        self.keep_area()
        images = list(images)
        patchcore, padim, held = _fit_pair(self, images, progress, fingerprint, p, follow=False)
        candidates = [patchcore]
        trials: list[Trial] = []
        chosen_i = 0
        reason = "no held-out good images to check PaDiM against PatchCore on: PatchCore stays"
        if held:
            candidates.append(padim)
            side = WORKING * max(d.preprocess.input_size for d in candidates)
            painted = prepare(held, PER_IMAGE, p["seed"], max_side=side, area=patchcore.inspection_area())
            checks = [d._self_check(held, progress, prepared=painted) for d in candidates]
            for d, check in zip(candidates, checks, strict=True):
                bank = int(d.memory_bank_.shape[0]) if d.method == "patchcore" else None
                strides = list(d.default_strides)
                size = int(d.params_["image_size"])
                trials.append(
                    Trial(list(d.params_["layers"]), strides, bank, *_figures(check), score_of(check), size, d.method)
                )
            n_good = checks[0].good if checks[0] is not None else 1
            chosen_i, reason = choose(trials, n_good)
            reason = reason.replace("the default's", "PatchCore's").replace("the default settings", "PatchCore")
            if checks[chosen_i] is not None:
                candidates[chosen_i].train_info_["self_check"] = checks[chosen_i].to_dict()
                candidates[chosen_i].train_info_["self_check_seconds"] = round(checks[chosen_i].seconds, 2)
        chosen = candidates[chosen_i]
        seconds = round(time.perf_counter() - started, 2)
        info = dict(chosen.train_info_)
        info["seconds"] = seconds
        info["method_choice"] = {
            "chosen": chosen.method,
            "reason": reason,
            "candidates": [t.to_dict() for t in trials],
            "chosen_candidate": chosen_i if trials else None,
            "seconds": seconds,
        }
        self._adopt(chosen)
        self.calibration_ = chosen.calibration_
        self.calibration_scores_ = chosen.calibration_scores_
        self.skipped_ = chosen.skipped_
        self.train_info_ = self._noted(info) if "search" in chosen.params_ else info  # PaDiM searches no bank
        return self

    def _adopt(self, chosen: Detector) -> None:
        """Score through ``chosen`` from now on; its resolved parameters (layers, the bank chosen) become ours."""
        _take_resolved(self, chosen)
        self.extractor_ = chosen.extractor_
        self.input_shape_ = chosen.input_shape_
        self.method_ = chosen.method
        self._chosen = chosen

    @property
    def chosen(self) -> Detector:
        """The fitted candidate that scores (a PatchCore or a PaDiM)."""
        self._check_fitted()
        return self._chosen

    @property
    def residual_layers(self) -> tuple[int, ...]:
        return self.chosen.residual_layers

    def _start(self, n_images: int) -> None:  # pragma: no cover - fit goes through the candidates
        raise LinewatchError("a method choice fits through its candidates")

    _accumulate = _finish = _start

    def _score(self, x: torch.Tensor, grids: bool = False) -> tuple[torch.Tensor, ...]:
        return self.chosen._score(x, grids)

    def graph(self) -> nn.Module:
        return self.chosen.graph()

    def tensors(self) -> dict[str, torch.Tensor]:
        """The chosen candidate's learned state, each name prefixed by its method (how ``_restore`` knows it)."""
        return {f"{self.method_}.{k}": v for k, v in self.chosen.tensors().items()}

    def _restore(self, tensors: dict[str, torch.Tensor]) -> None:
        methods = {k.split(".", 1)[0] for k in tensors}
        if len(methods) != 1 or not methods <= set(CANDIDATES):
            raise ValueError(f"a method choice stores one candidate's state, found {sorted(methods)}")
        method = methods.pop()
        self._adopt(_restored(self, method, {k.split(".", 1)[1]: v for k, v in tensors.items()}))


class CombinedGraph(nn.Module):
    """PatchCore's graph and PaDiM's side by side: the image score is the sum of the two, each divided by its own
    model's image threshold (PaDiM's times its share); the map and the search grids are PatchCore's. Without a PaDiM
    graph (its share is none) the score is PatchCore's alone."""

    def __init__(self, patchcore: nn.Module, padim: nn.Module | None, weights: torch.Tensor):
        super().__init__()
        self.patchcore = patchcore
        self.padim = padim
        self.register_buffer("weights", weights.float())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        maps = self.patchcore.features.maps(x)  # one backbone pass for both
        score, amap, feats, res = self.patchcore.head(self.patchcore.features.combine(maps))
        if self.padim is None:  # PaDiM's share is none: its part is not computed at all
            return score * self.weights[0], amap, feats, res
        other = self.padim.head(self.padim.features.combine(maps))[0]
        return score * self.weights[0] + other * self.weights[1], amap, feats, res


class Combined(Detector):
    """PatchCore and PaDiM fitted on the same images (``method="combined"``, the default): the image score adds the
    two models' scores, each divided by its own image threshold (set on the held-out good images), so neither scale
    dominates; the anomaly map, the regions and the search vectors are PatchCore's.

    Neither method wins everywhere: PaDiM's Gaussian per position leads on aligned surfaces (magnetic_tile: image
    AUROC 0.917 against PatchCore's 0.878), PatchCore's memory bank on objects' pixels (bottle: AUPRO 0.919 against
    0.872). The added scores reach the better one's image AUROC on both, and the maps stay PatchCore's sharper ones
    (docs/benchmarks.md). PaDiM accumulates from PatchCore's own backbone pass (``feature_taps``), and one backbone
    pass per image serves both; PaDiM's covariances are shared by 2 x 2 positions (``cov_block``), a quarter of the
    cost per image of one per position.

    PaDiM's share in the sum is chosen from the good images (``choose_share``, unless ``auto`` is off): where the
    painted copies of the held-out images are told apart clearly better with half of it or none (parts that sit
    anywhere in the frame, where a position's Gaussian learns little), that share is kept, and with none PaDiM is not
    computed when scoring."""

    method = "combined"
    default_strides = (4, 8, 16)

    Params = AutoParams

    def __init__(self, **params):
        super().__init__(**params)
        self.weights_: torch.Tensor | None = None  # (1 / PatchCore's image threshold, 1 / PaDiM's)
        self._parts: tuple[Detector, Detector] | None = None
        self._graph: CombinedGraph | None = None

    def _check_params(self, values: dict) -> None:
        super()._check_params(values)
        if values["holdout"] <= 0:
            raise LinewatchError(
                "a combined model weighs its two scores on held-out good images: holdout must be > 0 "
                "(or train --method patchcore, which needs none)"
            )

    @property
    def is_fitted(self) -> bool:
        return super().is_fitted and self._parts is not None

    def fit(self, images: Sequence[Source], progress: Progress | None = None, fingerprint: str | None = None):
        """Fit PatchCore (with its automatic choices) and PaDiM, weigh their scores (PaDiM's share chosen by the
        self-check unless ``auto`` is off), set the thresholds of the sum."""
        started = time.perf_counter()
        p = self.params_ = self._validate_params()
        self.extractor_, self._parts, self.weights_ = None, None, None
        self.keep_area()
        images = list(images)
        patchcore, padim, held = _fit_pair(
            self,
            images,
            progress,
            fingerprint,
            {**p, "self_check": False},
            follow=True,
            calibrate=False,
            companion=bool(p["self_check"]),
        )  # holdout > 0 is required: there are held-out images, so there is a PaDiM
        choosing = p["auto"] != "off"
        painted = self._painted_scores(patchcore, padim, held, progress, choosing) if p["self_check"] else None
        share_for = None
        if painted is not None and choosing:
            share_for = lambda weights: choose_share(weights, *painted[1:], painted[0].good)  # noqa: E731
        share = self._calibrate_both(patchcore, padim, held, progress, share_for)
        check = self._combined_check(*painted) if painted is not None else None
        self.skipped_ = patchcore.skipped_
        info = dict(patchcore.train_info_)
        info["seconds"] = round(time.perf_counter() - started, 2)
        info["combined"] = {
            "padim_seconds": padim.train_info_.get("seconds"),
            "padim_tapped": bool(padim.train_info_.get("tapped")),
            "weights": [round(float(w), 6) for w in self.weights_],
            "padim_share": share["share"] if share else 1.0,
        }
        if share:
            info["combined"]["share_choice"] = share
        if check is not None:
            info["self_check"] = check.to_dict()
            info["self_check_seconds"] = round(check.seconds, 2)
        self.train_info_ = self._noted(info)
        return self

    def _painted_scores(
        self, patchcore: Detector, padim: Detector, held: list, progress: Progress | None, choosing: bool
    ) -> tuple[SelfCheck, tuple[list, list], tuple[list, list]] | None:
        """PatchCore's self-check and both parts' raw image scores on the held-out good images and their painted
        copies: (check, PatchCore's (good, painted) scores, PaDiM's). From PatchCore's bank-choice pass, where PaDiM
        was scored in it (``PatchCore.choice_companion``: three copies of each held-out image); else from a pass of
        their own (one backbone pass per image for both), with three copies per image when PaDiM's share is to be
        chosen on them and one otherwise. None when fewer than two held-out images can be read."""
        found = patchcore.__dict__.pop("_choice_scores", None)
        if found is not None and found.companion is padim:
            return found.check, found.scores, found.companion_scores
        if not held:
            return None
        _share_backbone(patchcore, padim)
        painted = prepare(
            held,
            PER_IMAGE if choosing else 1,
            self.params_["seed"],
            max_side=WORKING * patchcore.preprocess.input_size,
            area=patchcore.inspection_area(),
        )
        if painted is None:
            return None
        relabel = (lambda _stage, d, t: progress("self-check", d, t)) if progress else None
        raw: list = []
        check = self_check_many([patchcore], painted, relabel, extra=[padim], raw=raw)[0]
        return check, raw[0], raw[1]

    def _combined_check(self, check: SelfCheck, scores: tuple, companion_scores: tuple) -> SelfCheck:
        """The combined model's self-check from both parts' raw scores on the painted images, weighed as the graph
        weighs them: the image AUROC of the sum; the pixel AUROC is PatchCore's, since the map is PatchCore's."""
        w = self.weights_.numpy()
        (good, bad), (other_good, other_bad) = scores, companion_scores
        good_sum = np.array(good, np.float32) * w[0] + np.array(other_good, np.float32) * w[1]
        bad_sum = np.array(bad, np.float32) * w[0] + np.array(other_bad, np.float32) * w[1]
        y = np.r_[np.zeros(len(good_sum)), np.ones(len(bad_sum))]
        image = rank_auroc(y, np.r_[good_sum, bad_sum])
        return SelfCheck(image, check.pixel_auroc, len(good_sum), len(bad_sum), check.seconds)

    def _calibrate_both(
        self,
        patchcore: Detector,
        padim: Detector,
        held: list,
        progress: Progress | None,
        share_for: Callable[[np.ndarray], dict] | None = None,
    ) -> dict | None:
        """Both parts' thresholds, the weights and the thresholds of the sum, from one pass over the held-out images
        (one backbone pass per image feeds both parts, as when scoring): each part's thresholds from its own scores,
        the weights from those (PaDiM's times the share ``share_for`` chooses from them, whose choice is returned),
        the sum's from the weighted scores and PatchCore's maps (the combined map). Nothing is changed when none of
        the images can be read."""
        parts: list[list[float]] = [[], []]
        peaks: list[list[float]] = [[], []]
        vectors, lit = [], []  # the images' looks (``appearance``), from PatchCore's grids as when scoring
        done = 0
        use_all_cores()
        with torch.inference_mode():
            for batch in iter_batches(held, patchcore.preprocess, self.params_["batch_size"], skip_bad=True):
                if len(batch.sizes):
                    outs = score_on_one_pass((patchcore, padim), torch.from_numpy(batch.inputs), grids=True)
                    for i, (scores, maps, *_grids) in enumerate(outs):
                        parts[i].extend(scores.tolist())
                        peaks[i].extend(maps.reshape(len(maps), -1).amax(1).tolist())
                    vectors.extend(image_vector(f) for f in outs[0][2].numpy())
                    lit.extend(brightness(batch.inputs).tolist())
                done += len(batch.sizes) + len(batch.skipped)
                if progress:
                    progress("calibrate", done, len(held))
        if not parts[0]:
            raise LinewatchError("none of the held-out good images could be read to set the thresholds")
        rate = self.params_["false_alarm_rate"]
        for part, s, m in zip((patchcore, padim), parts, peaks, strict=True):
            part.calibration_ = calibrate(np.array(s), np.array(m), rate, part.score_floor)
        # a zero threshold would divide by zero, so it weighs 1
        cals = (patchcore.calibration_, padim.calibration_)
        weights = torch.tensor([1.0 / (c.image_threshold if c.image_threshold > 0 else 1.0) for c in cals])
        share = share_for(weights.numpy()) if share_for is not None else None
        if share is not None:
            weights = weights * torch.tensor([1.0, share["share"]])
        self._assemble(patchcore, padim, weights)
        w = self.weights_.numpy()
        summed = np.array(parts[0], dtype=np.float32) * w[0] + np.array(parts[1], dtype=np.float32) * w[1]
        self._set_calibration(summed, peaks[0], 0.0, np.stack(vectors), lit)
        return share

    def _assemble(self, patchcore: Detector, padim: Detector, weights: torch.Tensor) -> None:
        """Score with both parts from now on (PatchCore alone where PaDiM's weight is 0); PatchCore's resolved
        parameters (layers, the bank chosen) are ours."""
        _take_resolved(self, patchcore)
        _share_backbone(patchcore, padim)
        self.extractor_ = patchcore.extractor_
        self.input_shape_ = patchcore.input_shape_
        self.weights_ = weights.float()
        self._parts = (patchcore, padim)
        scoring = padim.graph() if float(self.weights_[1]) != 0 else None
        self._graph = CombinedGraph(patchcore.graph(), scoring, self.weights_).eval()

    @property
    def _scoring(self) -> tuple[Detector, ...]:
        """The parts that score: both, or PatchCore alone where PaDiM's share is none."""
        return self._parts if float(self.weights_[1]) != 0 else self._parts[:1]

    @property
    def residual_layers(self) -> tuple[int, ...]:
        self._check_fitted()
        return self._parts[0].residual_layers

    def _start(self, n_images: int) -> None:  # pragma: no cover - fit goes through the parts
        raise LinewatchError("a combined model fits through its parts")

    _accumulate = _finish = _start

    def _score(self, x: torch.Tensor, grids: bool = False) -> tuple[torch.Tensor, ...]:
        outs = score_on_one_pass(self._scoring, x, grids)  # one backbone pass for both
        score = outs[0][0] * self.weights_[0]
        if len(outs) > 1:
            score = score + outs[1][0] * self.weights_[1]
        return (score, *outs[0][1:])

    def graph(self) -> nn.Module:
        self._check_fitted()
        return self._graph

    def tensors(self) -> dict[str, torch.Tensor]:
        self._check_fitted()
        out = {"weights": self.weights_}
        for part in self._parts:
            out.update({f"{part.method}.{k}": v for k, v in part.tensors().items()})
        return out

    def _restore(self, tensors: dict[str, torch.Tensor]) -> None:
        parts = [
            _restored(self, m, {k[len(m) + 1 :]: v for k, v in tensors.items() if k.startswith(m + ".")})
            for m in ("patchcore", "padim")
        ]
        self._assemble(*parts, tensors["weights"])


SEARCH_SETTINGS = ("search", "search_step", "refine")  # how PatchCore searches its bank: not learned, changeable


def set_search(det: Detector, **settings) -> Detector:
    """Score the fitted ``det`` with other bank-search ``settings`` (``search``, ``search_step``, ``refine``) from now
    on: PatchCore's, alone, as a combined model's part or as a method choice's pick; the bank and thresholds stay.
    ``search="auto"`` resolves for this CPU. Returns the PatchCore that searches."""
    unknown = set(settings) - set(SEARCH_SETTINGS)
    if unknown:
        names = ", ".join(sorted(unknown))
        raise LinewatchError(f"not a search setting: {names} (the settings: {', '.join(SEARCH_SETTINGS)})")
    if "search" in settings:
        settings["search"] = resolve_search(settings["search"])[0]
    inner = det.chosen if isinstance(det, MethodChoice) else det
    inner._check_fitted()
    part = inner._parts[0] if isinstance(inner, Combined) else inner
    if "search" not in part.params_:
        raise LinewatchError(f"this {part.method} model has no memory bank to search (PatchCore and combined do)")
    part.params_.update(settings)
    part._build()
    if part is not inner:
        inner._assemble(*inner._parts, inner.weights_)
    for d in (det, inner):
        d.params_.update(settings)
    return part
