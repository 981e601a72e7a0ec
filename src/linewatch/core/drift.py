"""Has what a model scores moved away from what its thresholds were set on? A drift watch for any engine whose
thresholds come from scores of known-good samples (a vision model's held-out good images, kept in its manifest as
``calibration_scores``).

The recent scores of a station (or a folder of today's photos) are compared with those reference scores by the
Mann-Whitney test: its effect size, the *shift AUROC* (the chance that a recent score is above a reference one, ties
counted half), is 0.5 when nothing moved, and its p-value says whether the difference is more than the two samples'
chance. Defective parts among the recent ones raise it only by about half their share (5 % defects: 0.525), so a
rank test on all recent scores needs no verdicts; a light gone brighter or a camera moved shifts every good part's
score and drives it towards 1 (or 0: scores can fall too, and then misses rise). Both the size and the p-value must
pass (``LEVELS``): with thousands of scores a tiny shift is significant, with a few dozen a large one can be chance.

A change of light often moves the upper tail more than the bulk (magnetic_tile 1.25x brighter: a shift AUROC of
0.58-0.66, yet two to three times the false alarms), and a rise in flagged parts alone cannot tell drift from
more defects. Where reviewers look at the flagged parts, the flags they overturn are false alarms counted for sure:
``confirmed_false_alarms`` among the recent parts is tested against the rate the threshold really has on the
reference (one-sided): a threshold set on a hundred good images promises 1 % but may hold 2 %, and a binomial test at
the promised rate called that drift in up to 3 % of unchanged stations (docs/benchmarks.md). The rate is taken as
uncertain as the reference makes it, a Beta(k + 1/2, n - k + 1/2) for k of its n scores at or above the threshold,
and the count tested against the beta-binomial it implies. The watch takes the worse of the two signals.

The levels were set on measurements (docs/benchmarks.md, "A drift watch on the scores"), not on one category. Light
to import: numpy and scipy only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

MIN_RECENT = 30  # fewer recent scores say nothing either way
MIN_REFERENCE = 10
#: (level, smallest |shift AUROC - 0.5|, largest p-value), the first that holds wins
LEVELS = (("drift", 0.25, 1e-4), ("watch", 0.15, 1e-2))
#: (level, smallest confirmed false-alarm share as a multiple of the promised rate, largest p-value)
ALARM_LEVELS = (("drift", 2.0, 1e-4), ("watch", 1.5, 1e-2))
_ORDER = ("unknown", "ok", "watch", "drift")


@dataclass
class ScoreDrift:
    """How far recent scores moved from the reference ones, and what it means."""

    level: str  # "ok", "watch", "drift", or "unknown" (too few scores to tell)
    recent: int  # scores compared
    reference: int
    shift_auroc: float | None  # P(recent > reference) + P(equal) / 2: 0.5 unmoved, towards 1 higher, 0 lower
    p_value: float | None  # two-sided Mann-Whitney
    median_percentile: float | None  # where the recent scores' median falls among the reference scores, 0-100
    flagged_share: float | None  # share of the recent scores at or above the threshold (defects included)
    promised_rate: float | None  # the false-alarm rate the threshold was set for
    reason: str
    scores_level: str = "unknown"  # the rank test's level alone
    false_alarms: int | None = None  # flags reviewers overturned among the recent parts (None: not counted)
    false_alarm_share: float | None = None  # of the recent parts: at least the true rate (unreviewed flags aside)
    false_alarm_p: float | None = None  # P(this many or more | the rate the threshold has on the reference)
    false_alarms_level: str = "unknown"

    def to_dict(self) -> dict:
        return {
            k: (float(f"{v:.4g}") if k.endswith("p_value") or k == "false_alarm_p" else round(v, 6))
            if isinstance(v, float)
            else v
            for k, v in asdict(self).items()
        }


def score_drift(
    reference: Sequence[float],
    recent: Sequence[float],
    threshold: float | None = None,
    promised_rate: float | None = None,
    confirmed_false_alarms: int | None = None,
) -> ScoreDrift:
    """Compare ``recent`` scores with the ``reference`` scores the thresholds were set on. ``threshold`` adds the
    share of recent scores flagged; ``promised_rate`` with ``confirmed_false_alarms`` (flags among the recent parts
    that reviewers overturned) tests the false alarms against the rate the thresholds promise."""
    from scipy.stats import betabinom, binomtest, mannwhitneyu

    ref = np.asarray([s for s in reference if np.isfinite(s)], np.float64)
    now = np.asarray([s for s in recent if np.isfinite(s)], np.float64)
    n = int(now.size)
    flagged = float(np.mean(now >= threshold)) if threshold is not None and n else None
    out = ScoreDrift("unknown", n, int(ref.size), None, None, None, flagged, promised_rate, "")
    reasons = []
    if n < MIN_RECENT or ref.size < MIN_REFERENCE:
        reasons.append(
            f"too few scores to compare: {n} recent (at least {MIN_RECENT}) against {ref.size} reference "
            f"(at least {MIN_REFERENCE})"
        )
    else:
        u, p = mannwhitneyu(now, ref, alternative="two-sided", method="asymptotic")
        out.shift_auroc = auroc = float(u) / (n * ref.size)
        out.p_value = float(p)
        middle = float(np.median(now))
        out.median_percentile = 100.0 * float(np.mean(ref < middle) + 0.5 * np.mean(ref == middle))
        out.scores_level = _level(LEVELS, abs(auroc - 0.5), p)
        where = (
            f"the typical recent score is at percentile {out.median_percentile:.0f} of the {ref.size} reference "
            f"scores (shift AUROC {auroc:.2f}, p = {p:.1e})"
        )
        if out.scores_level == "ok":
            reasons.append("scores look as when the thresholds were set: " + where)
        elif auroc > 0.5:
            reasons.append(
                f"scores are higher than when the thresholds were set: {where}; good parts will be flagged more "
                "often than promised"
            )
        else:
            reasons.append(
                f"scores are lower than when the thresholds were set: {where}; defects may be missed more often"
            )
    if confirmed_false_alarms is not None and promised_rate and n >= MIN_RECENT:
        k = int(confirmed_false_alarms)
        out.false_alarms, out.false_alarm_share = k, k / n
        if threshold is not None and ref.size:
            above = int(np.sum(ref >= threshold))
            p = float(betabinom.sf(k - 1, n, above + 0.5, ref.size - above + 0.5))
        else:
            p = float(binomtest(k, n, promised_rate, alternative="greater").pvalue)
        out.false_alarm_p = p
        out.false_alarms_level = _level(ALARM_LEVELS, out.false_alarm_share / promised_rate, p)
        said = (
            f"reviewers overturned {k} flags among {n} parts: {out.false_alarm_share:.1%} false alarms at least, "
            f"against the {promised_rate:.1%} promised (p = {p:.1e})"
        )
        reasons.append(said if out.false_alarms_level != "ok" else said + ", within chance")
    if out.false_alarms is None and flagged is not None and promised_rate and flagged >= 2 * promised_rate:
        # no reviews to tell them apart: more defects, or good parts flagged (which the rank test may not show)
        reasons.append(
            f"{flagged:.1%} of the recent parts are flagged against the {promised_rate:.1%} false alarms promised: "
            "more defects, or good parts flagged; reviewing the flags tells which"
        )
    out.level = max(out.scores_level, out.false_alarms_level, key=_ORDER.index)
    if out.level in ("watch", "drift"):
        high = (out.shift_auroc or 0.5) > 0.5 or out.false_alarms_level in ("watch", "drift")
        reasons.append(
            "set the thresholds again on today's good parts (or train again if defects are missed)"
            if high
            else "check the light and the camera, or train again"
        )
    out.reason = "; ".join(reasons)
    return out


def rate_bound(above: int, n: int, confidence: float = 0.95) -> float:
    """How high the true false-alarm rate of a threshold can be, at ``confidence``, when ``above`` of the ``n`` good
    scores it was set on are at or above it (the Jeffreys interval's upper end, the same Beta the watch uses)."""
    from scipy.stats import beta

    return float(beta.ppf(confidence, above + 0.5, n - above + 0.5))


def _level(levels, size: float, p: float) -> str:
    for name, smallest, largest_p in levels:
        if size >= smallest and p <= largest_p:
            return name
    return "ok"
