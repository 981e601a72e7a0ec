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
from collections.abc import Sequence

import torch
from torch import nn

from linewatch.errors import LinewatchError
from linewatch.vision.autochoice import PER_IMAGE, Trial, _figures, _relabel, choose, score_of
from linewatch.vision.batches import Source
from linewatch.vision.detector import Detector, Progress
from linewatch.vision.methods import AutoParams, PadimParams, PatchCoreParams
from linewatch.vision.selfcheck import WORKING, prepare

CANDIDATES = {"patchcore": PatchCoreParams, "padim": PadimParams}
RESOLVED = ("layers", "max_bank", "image_size")  # what a candidate's fit may resolve or choose


def _candidate(method: str, params: dict) -> Detector:
    from linewatch.vision.padim import Padim
    from linewatch.vision.patchcore import PatchCore

    cls = {"patchcore": PatchCore, "padim": Padim}[method]
    return cls(**{k: v for k, v in params.items() if k in CANDIDATES[method].specs()})


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
        images = list(images)
        patchcore = _candidate("patchcore", p)
        patchcore.fit(images, _relabel(progress, "patchcore"), fingerprint)
        _, held = patchcore.split(images)
        candidates = [patchcore]
        trials: list[Trial] = []
        chosen_i = 0
        reason = "no held-out good images to check PaDiM against PatchCore on: PatchCore stays"
        if held:
            padim = _candidate("padim", {**p, "self_check": False})
            padim.fit(images, _relabel(progress, "padim"), fingerprint)
            candidates.append(padim)
            side = WORKING * max(d.preprocess.input_size for d in candidates)
            painted = prepare(held, PER_IMAGE, p["seed"], max_side=side)
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
        self.skipped_ = chosen.skipped_
        self.train_info_ = info
        return self

    def _adopt(self, chosen: Detector) -> None:
        """Score through ``chosen`` from now on; its resolved parameters (layers, the bank chosen) become ours."""
        for k in RESOLVED:
            if k in chosen.params_:
                self.params_[k] = chosen.params_[k]
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
        inner = _candidate(method, self.params_)
        inner.params_ = {k: v for k, v in self.params_.items() if k in CANDIDATES[method].specs()}
        inner.input_shape_ = self.input_shape_
        inner.extractor_ = self.extractor_
        inner._restore({k.split(".", 1)[1]: v for k, v in tensors.items()})
        self._adopt(inner)
