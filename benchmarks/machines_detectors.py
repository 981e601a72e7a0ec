"""Which detector a machine's model in the service should run: SKAB's runs replayed as the service scores them.

    python benchmarks/machines_detectors.py DATA_ROOT [--warm 400] [--quiet 60] [--tables pca,knn:n_neighbors=5,...]

DATA_ROOT holds factory/skab/data (e.g. ../shared/data). Each of SKAB's 34 labelled runs (8 sensors, one reading a
second) is one machine: its detector is warmed on the first ``--warm`` rows (the service's training: the detector
learns its series from the stored readings, ``learning_period`` set to those rows) and then scores the rest point by
point, causally. A time step alerts when any sensor's score reaches the threshold, and alerts group as the service
groups them: an alert opens at an alerting step, takes in every alerting step until ``--quiet`` seconds pass without
one (``alert_quiet_s``), then closes. Per detector, over all runs:

- *faults found*: anomaly windows (SKAB's labelled segments) that an alert overlaps, and the median delay from the
  window's start to the first alerting step in it;
- *false alerts*: alerts that overlap no window, per hour of normal readings scored;
- the outlier protocol's per-row F1 / FAR / MAR beside them (what ``sensors_skab.py`` reports for table models);
- SKAB's anomaly-free run (warmed on its first rows, then 9,000+ normal seconds): false alerts per hour.

The table detector of ``linewatch sensors fit`` (mahalanobis, fitted on the same rows, one model over all sensors)
scores the test rows in one batch, and live (``linewatch.sensors.live.LiveTable``: ten rows at a time, the training
rows as the first rows' history).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sensors_skab import SENSORS  # the benchmark beside this one (benchmarks/ is the script's folder)

from linewatch.sensors.metrics import alarm_metrics
from linewatch.sensors.streaming import StreamingDetector
from linewatch.sensors.surprise import SurpriseDetector


def runs(root: Path, free: bool = False):
    data = root / "factory" / "skab" / "data"
    for p in sorted(data.glob("*/*.csv")):
        if (p.parent.name == "anomaly-free") != free:
            continue
        d = pd.read_csv(p, sep=";")
        t = pd.to_datetime(d["datetime"])
        y = d["anomaly"].to_numpy() > 0 if "anomaly" in d else np.zeros(len(d), bool)
        yield p.stem, d[SENSORS].to_numpy(float), (t - t.iloc[0]).dt.total_seconds().to_numpy(), y


def streaming(kind: str, warm: int, **params):
    def alerts(x: np.ndarray, t: np.ndarray) -> np.ndarray:
        cls = StreamingDetector if kind == "stream" else SurpriseDetector
        det = cls(**{"learning_period": warm, **params})
        det.start(x.shape[1], SENSORS)
        det.update_many(x[:warm])
        _, al = det.update_many(x[warm:])
        return al.any(axis=1)

    return alerts


def table(warm: int, live: bool = False, method: str = "mahalanobis", params: dict | None = None):
    from linewatch.sensors.live import LiveTable
    from linewatch.sensors.methods import METHODS

    def alerts(x: np.ndarray, t: np.ndarray) -> np.ndarray:
        det = METHODS.create(method, **(params or {})).fit(x[:warm], t[:warm], sensors=SENSORS)
        if not live:
            return np.asarray(det.predict(x[warm:], t[warm:]), bool)
        stream = LiveTable(det)
        stream.update(x[:warm], t[:warm])  # the training rows are the first rows' history
        return np.concatenate([stream.update(x[i : i + 10], t[i : i + 10])[2] for i in range(warm, len(x), 10)])

    return alerts


def grouped(alert: np.ndarray, t: np.ndarray, quiet: float) -> list[tuple[int, int]]:
    """Alerts as the service opens and closes them: (first, last) step indices."""
    out: list[tuple[int, int]] = []
    for i in np.flatnonzero(alert):
        if out and t[i] - t[out[-1][1]] <= quiet:
            out[-1] = (out[-1][0], i)
        else:
            out.append((i, i))
    return out


def windows(y: np.ndarray) -> list[tuple[int, int]]:
    edges = np.flatnonzero(np.diff(np.r_[0, y.astype(int), 0]))
    return list(zip(edges[::2], edges[1::2] - 1, strict=True))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path)
    ap.add_argument("--warm", type=int, default=400, help="rows each detector learns from before it scores")
    ap.add_argument("--quiet", type=float, default=60.0, help="seconds without an alerting step that close an alert")
    ap.add_argument(
        "--tables",
        default="",
        help="more table methods to run live beside mahalanobis: pca,knn,... (parameters: pca:threshold_margin=2.5)",
    )
    a = ap.parse_args()
    labelled = list(runs(a.root))
    free = list(runs(a.root, free=True))
    detectors = {
        "stream, no quiet period (`suppress` 0, the service's)": streaming("stream", a.warm, suppress=0),
        "surprise, the engine's defaults (`rearm` 100)": streaming("surprise", a.warm),
        "surprise, `rearm` 0": streaming("surprise", a.warm, rearm=0),
        "mahalanobis table model, the test rows in one batch (`linewatch sensors score`)": table(a.warm),
        "mahalanobis table model, live: 10 rows at a time after the training rows (`LiveTable`)": table(a.warm, True),
    }
    for spec in filter(None, a.tables.split(",")):
        method, *settings = spec.split(":")
        params = dict(x.split("=", 1) for x in settings)
        how = ", ".join(f"`{k}` {v}" for k, v in params.items()) or "its defaults"
        detectors[f"{method} table model ({how}), live like mahalanobis"] = table(a.warm, True, method, params)
    print(f"SKAB, {len(labelled)} labelled runs; warmed on {a.warm} rows, alerts closed after {a.quiet:g} s quiet")
    print(
        "| detector | faults found | median delay s | false alerts | per hour of normal | row F1 | FAR % | MAR % "
        "| anomaly-free: false alerts per hour | s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, alerts_of in detectors.items():
        t0 = time.perf_counter()
        found = total = false = 0
        normal_s = 0.0
        delays, truth, rows = [], [], []
        for _, x, t, y in labelled:
            al = alerts_of(x, t)
            ts, ys = t[a.warm :], y[a.warm :]
            truth.append(ys)
            rows.append(al)
            wins = windows(ys)
            total += len(wins)
            groups = grouped(al, ts, a.quiet)
            for s, e in wins:
                hit = np.flatnonzero(al[s : e + 1])
                if len(hit):
                    found += 1
                    delays.append(ts[s + hit[0]] - ts[s])
            false += sum(1 for g0, g1 in groups if not any(g0 <= e and s <= g1 for s, e in wins))
            step = float(np.median(np.diff(ts))) if len(ts) > 1 else 1.0
            normal_s += float((~ys).sum()) * step
        m = alarm_metrics(np.concatenate(truth), np.concatenate(rows))
        free_alerts, free_s = 0, 0.0
        for _, x, t, _y in free:
            al = alerts_of(x, t)
            free_alerts += len(grouped(al, t[a.warm :], a.quiet))
            free_s += float(t[-1] - t[a.warm])
        print(
            f"| {name} | {found} / {total} | {np.median(delays) if delays else float('nan'):.0f} | {false} "
            f"| {false / (normal_s / 3600):.2f} | {m['f1']:.3f} | {100 * m['far']:.1f} | {100 * m['mar']:.1f} "
            f"| {free_alerts / (free_s / 3600):.2f} | {time.perf_counter() - t0:.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
