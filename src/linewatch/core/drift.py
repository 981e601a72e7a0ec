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
and the count tested against the beta-binomial it implies.

Scores miss what a model's features are blind to, though defects then hide: a dimmer lamp on magnetic_tile barely
moves them while misses rise, and a lens that lost contrast even lowers them. Where the reference photos' *looks*
are kept (``Looks``: each photo's whole-image embedding and mean brightness), two more rank tests compare the recent
photos with them: how far each photo's look is from its nearest reference photo's (the reference photos measured
leave-one-out; only farther counts: a camera moved, zoomed or out of focus, another part), and their brightness
(either way). The watch takes the worst of the signals.

The levels were set on measurements (docs/benchmarks.md, "A drift watch on the scores"), not on one category. Light
to import: numpy and scipy only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

MIN_RECENT = 30  # fewer recent scores say nothing either way
MIN_REFERENCE = 10
#: (level, smallest |shift AUROC - 0.5|, largest p-value), the first that holds wins
LEVELS = (("drift", 0.25, 1e-4), ("watch", 0.15, 1e-2))
#: (level, smallest confirmed false-alarm share as a multiple of the promised rate, largest p-value)
ALARM_LEVELS = (("drift", 2.0, 1e-4), ("watch", 1.5, 1e-2))
_ORDER = ("unknown", "ok", "watch", "drift")


@dataclass
class Looks:
    """What photos looked like: each one's whole-image embedding (``(n, C)``, L2-normalised; None: not kept) and its
    mean brightness (``(n,)``, 0 to 1; None: not kept), in any order (``linewatch.vision.appearance``)."""

    vectors: np.ndarray | None = None
    brightness: np.ndarray | None = None

    def __post_init__(self):
        if self.vectors is not None:
            v = np.asarray(self.vectors, np.float32)
            self.vectors = v.reshape(len(v), -1) if len(v) else None
        if self.brightness is not None:
            b = np.asarray(self.brightness, np.float64).ravel()
            b = b[np.isfinite(b)]
            self.brightness = b if b.size else None


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
    # the looks (None where no looks were compared): P(a recent photo is farther from its nearest reference photo
    # than a reference photo is from its own), its one-sided p-value and level
    look_auroc: float | None = None
    look_p: float | None = None
    look_level: str = "unknown"
    # brightness: the recent median's change relative to the reference median (-0.2: a fifth darker), the rank test
    brightness_change: float | None = None
    brightness_auroc: float | None = None
    brightness_p: float | None = None
    brightness_level: str = "unknown"
    # where the caller names its photos (``vision.watch_drift``): the recent ones farthest from every reference photo,
    # the farthest first, each {"name", "distance", "brightness"} (None: not named)
    farthest: list[dict] | None = None
    # each recent photo's distance to its nearest reference photo, in the order given (None: no looks to compare);
    # for the caller's trend and ``farthest_first``, not part of the answer
    look_distances: np.ndarray | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        return {
            k: (float(f"{v:.4g}") if k.endswith("p_value") or k.endswith("_p") else round(v, 6))
            if isinstance(v, float)
            else v
            for k, v in asdict(self).items()
            if k != "look_distances"
        }


def score_drift(
    reference: Sequence[float],
    recent: Sequence[float],
    threshold: float | None = None,
    promised_rate: float | None = None,
    confirmed_false_alarms: int | None = None,
    reference_looks: Looks | None = None,
    recent_looks: Looks | None = None,
) -> ScoreDrift:
    """Compare ``recent`` scores with the ``reference`` scores the thresholds were set on. ``threshold`` adds the
    share of recent scores flagged; ``promised_rate`` with ``confirmed_false_alarms`` (flags among the recent parts
    that reviewers overturned) tests the false alarms against the rate the thresholds promise; the looks of the
    reference photos and the recent ones compare what the photos look like (``Looks``: either part may be missing
    on either side, and is then not compared)."""
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
    if reference_looks is not None and recent_looks is not None:
        reasons.extend(_compare_looks(out, reference_looks, recent_looks))
    out.level = max(out.scores_level, out.false_alarms_level, out.look_level, out.brightness_level, key=_ORDER.index)
    if out.level in ("watch", "drift"):
        alarmed = ("watch", "drift")
        high = (out.shift_auroc or 0.5) > 0.5 or out.false_alarms_level in alarmed
        if out.look_level in alarmed or out.brightness_level in alarmed:
            reasons.append(
                "check the light and the camera; if the change is meant to stay, set the thresholds again on today's "
                "good parts (or train again if defects are missed)"
            )
        else:
            reasons.append(
                "set the thresholds again on today's good parts (or train again if defects are missed)"
                if high
                else "check the light and the camera, or train again"
            )
    out.reason = "; ".join(reasons)
    return out


def nearest_distance(reference: np.ndarray, vectors: np.ndarray | None = None) -> np.ndarray:
    """Cosine distance of each of ``vectors`` (L2-normalised rows) to its nearest ``reference`` row; without
    ``vectors``, of each reference row to its nearest other one (leave-one-out)."""
    ref = np.asarray(reference, np.float32)
    if vectors is None:
        sims = ref @ ref.T
        np.fill_diagonal(sims, -np.inf)
    else:
        sims = np.asarray(vectors, np.float32) @ ref.T
    return (1.0 - sims.max(1)).astype(np.float64)


def _compare_looks(out: ScoreDrift, ref: Looks, now: Looks) -> list[str]:
    """The two rank tests of the looks, set on ``out``; the reasons they give."""
    from scipy.stats import mannwhitneyu

    reasons = []
    if ref.vectors is not None and now.vectors is not None and ref.vectors.shape[1] == now.vectors.shape[1]:
        n, m = len(now.vectors), len(ref.vectors)
        out.look_distances = dist = nearest_distance(ref.vectors, now.vectors)
        if n >= MIN_RECENT and m >= MIN_REFERENCE:
            base = nearest_distance(ref.vectors)
            u, p = mannwhitneyu(dist, base, alternative="greater", method="asymptotic")
            out.look_auroc, out.look_p = float(u) / (n * m), float(p)
            out.look_level = _level(LEVELS, out.look_auroc - 0.5, p)
            middle = float(np.median(dist))
            share = 100.0 * float(np.mean(base < middle) + 0.5 * np.mean(base == middle))
            said = (
                f"the typical recent photo is farther from the nearest of the {m} reference photos than {share:.0f} % "
                f"of them are from each other (look AUROC {out.look_auroc:.2f}, p = {p:.1e})"
            )
            reasons.append(
                "photos look as when the thresholds were set: " + said
                if out.look_level == "ok"
                else "photos look unlike those the thresholds were set on (the camera moved or lost focus, the "
                f"lens or the part changed): {said}"
            )
    if ref.brightness is not None and now.brightness is not None:
        n, m = len(now.brightness), len(ref.brightness)
        if n >= MIN_RECENT and m >= MIN_REFERENCE:
            u, p = mannwhitneyu(now.brightness, ref.brightness, alternative="two-sided", method="asymptotic")
            out.brightness_auroc, out.brightness_p = float(u) / (n * m), float(p)
            out.brightness_level = _level(LEVELS, abs(out.brightness_auroc - 0.5), p)
            before = float(np.median(ref.brightness))
            out.brightness_change = float(np.median(now.brightness)) / before - 1.0 if before > 0 else None
            change = (
                f"{abs(out.brightness_change):.0%} {'darker' if out.brightness_change < 0 else 'brighter'}"
                if out.brightness_change is not None
                else "changed"
            )
            said = f"the typical recent photo is {change} (brightness AUROC {out.brightness_auroc:.2f}, p = {p:.1e})"
            reasons.append(
                "brightness as when the thresholds were set: " + said
                if out.brightness_level == "ok"
                else "photos are lit otherwise than those the thresholds were set on: " + said
            )
    return reasons


FARTHEST = 5  # the recent photos named as looking least like the reference ones


def farthest_first(distances: np.ndarray, n: int = FARTHEST) -> list[int]:
    """The positions of the ``n`` largest ``distances``, the largest first (ties in the order given)."""
    return [int(i) for i in np.argsort(-np.asarray(distances), kind="stable")[:n]]


TREND_WINDOWS = 24  # groups of consecutive recent parts a trend has at most


def drift_trend(
    times: Sequence,
    scores: Sequence[float],
    brightness: Sequence[float | None] | None = None,
    distances: Sequence[float | None] | None = None,
    windows: int = TREND_WINDOWS,
) -> list[dict]:
    """The recent parts (given oldest first) in at most ``windows`` consecutive groups of (nearly) equal size, for a
    chart of when something moved: each group's last time (``until``), its part count and the median of each figure
    (``score``, ``brightness``, ``look``: the distance to the nearest reference photo), None where none of its parts
    has that figure."""
    n = len(scores)
    if n == 0:
        return []
    columns = {"score": scores, "brightness": brightness, "look": distances}
    out = []
    for part in np.array_split(np.arange(n), min(windows, n)):
        row = {"until": times[part[-1]], "parts": int(part.size)}
        for key, values in columns.items():
            got = [values[i] for i in part if values is not None and values[i] is not None]
            got = [v for v in got if np.isfinite(v)]
            row[key] = round(float(np.median(got)), 6) if got else None
        out.append(row)
    return out


def reference_band(reference: Sequence[float], looks: Looks | None = None) -> dict:
    """Where the reference's figures lie, as (5th percentile, median, 95th percentile) each: its ``score``, and where
    its looks are kept, its ``brightness`` and ``look`` (each reference photo's distance to its nearest other one, as
    the recent photos' distance to their nearest reference one is measured); None where there is none."""

    def band(values) -> list[float] | None:
        v = np.asarray([x for x in values if np.isfinite(x)], np.float64) if values is not None else np.empty(0)
        return [round(float(q), 6) for q in np.quantile(v, [0.05, 0.5, 0.95])] if v.size else None

    looks = looks or Looks()
    vectors = looks.vectors if looks.vectors is not None and len(looks.vectors) >= 2 else None
    return {
        "score": band(reference),
        "brightness": band(looks.brightness),
        "look": band(nearest_distance(vectors)) if vectors is not None else None,
    }


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
