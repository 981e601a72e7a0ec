"""Scoring beside a training on a shared 2-core PC, under each OpenMP wait policy.

    python benchmarks/shared_cores.py ../shared/data/mvtec_ad/bottle [--train-images 80] [--score-images 40]

The service trains in a thread of its own process while it scores the stations' photos (and a worker may train
beside it on the same machine). linewatch sets ``OMP_WAIT_POLICY=PASSIVE`` unless the user set a policy: torch's
threads then sleep while they wait for work instead of spinning on a core. This measures what that changes.

A model is trained once (the defaults) and exported to ONNX. Then, for each policy, in a fresh process: scoring
alone (``OnnxModel.predict`` one test image at a time, pre-decoded, as a station's request), a training of
``--train-images`` good images alone (the default method and size, ``fit``), and both at once: the scoring on the
main thread until the training ends, the training in a thread of the same process (the service's job runner) or in
another process (a worker on the same machine). ``PASSIVE`` is linewatch's setting; "unset" is
the libraries' own default (``OMP_WAIT_POLICY`` set empty, which linewatch leaves alone): spin a while, then sleep.
Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, statistics, sys, threading, time
import linewatch  # sets the wait policy unless the environment has one (before torch is imported)
from linewatch.vision.datasets import load_dataset
from linewatch.vision.images import open_image
from linewatch.vision.runtime import OnnxModel
from linewatch.vision.saving import create_detector

data, model_dir, n_train, n_score, where = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
ds = load_dataset(data)
train = [open_image(p) for p in ds.train[:n_train]]


def fit():
    t = time.perf_counter()
    create_detector("combined").fit(train)
    return time.perf_counter() - t


create_detector("combined").fit(train[:5])  # warm-up: the backbone loaded once
if where == "fit":  # the other process of where == "process": its training time only
    print(json.dumps({"fit": fit()}))
    sys.exit()
score = [open_image(s.path) for s in ds.test[:n_score]]
model = OnnxModel(model_dir)
model.predict(score[:3])  # warm-up


def scores(until=None):
    ms = []
    i = 0
    while (until is None and i < len(score)) or (until is not None and until.is_alive()):
        t = time.perf_counter()
        model.predict([score[i % len(score)]])
        ms.append((time.perf_counter() - t) * 1000)
        i += 1
    return ms


alone_ms = scores()
alone_fit = fit()
took = {}
if where == "thread":  # the service's job runner
    th = threading.Thread(target=lambda: took.setdefault("fit", fit()))
    th.start()
    beside_ms = scores(until=th)
    th.join()
else:  # a worker on the same machine: the same training in another process
    import subprocess

    argv = [sys.executable, sys.argv[0], *sys.argv[1:5], "fit"]  # this script again, training only
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)

    class Running:
        def is_alive(self):
            return proc.poll() is None

    beside_ms = scores(until=Running())
    took["fit"] = json.loads(proc.stdout.read())["fit"]
q = lambda ms, p: sorted(ms)[min(len(ms) - 1, int(p * len(ms)))]
print(json.dumps({
    "alone_p50": statistics.median(alone_ms), "alone_p95": q(alone_ms, 0.95),
    "beside_p50": statistics.median(beside_ms), "beside_p95": q(beside_ms, 0.95), "beside_n": len(beside_ms),
    "fit_alone": alone_fit, "fit_beside": took["fit"],
}))
"""


def measure(args, work: Path) -> list[tuple[str, str, dict]]:
    model, child = work / "model", work / "child.py"
    child.write_text(CHILD)
    lw = [sys.executable, "-m", "linewatch.cli"]
    subprocess.run([*lw, "train", str(args.data), "--out", str(model)], check=True, stdout=subprocess.DEVNULL)
    subprocess.run([*lw, "export", str(model)], check=True, stdout=subprocess.DEVNULL)
    rows = []
    for _ in range(args.repeat):
        for where in ("thread", "process"):
            for policy in ("PASSIVE", ""):
                env = {**os.environ, "OMP_WAIT_POLICY": policy}
                argv = [str(args.data), str(model), str(args.train_images), str(args.score_images), where]
                out = subprocess.run([sys.executable, str(child), *argv], env=env, capture_output=True, text=True)
                if out.returncode != 0:
                    sys.exit(f"the measuring process failed ({where}, {policy or 'unset'}):\n{out.stderr[-2000:]}")
                rows.append((where, policy or "unset", json.loads(out.stdout.strip().splitlines()[-1])))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path, help="an MVTec-layout category")
    ap.add_argument("--train-images", type=int, default=80)
    ap.add_argument("--score-images", type=int, default=40)
    ap.add_argument("--repeat", type=int, default=1, help="runs per policy, alternating")
    args = ap.parse_args()
    if not (args.data / "train" / "good").is_dir():
        sys.exit(f"not an MVTec-layout category: {args.data}")
    with tempfile.TemporaryDirectory(prefix="lw-shared-cores-") as tmp:
        rows = measure(args, Path(tmp))
    print(f"cores: {len(os.sched_getaffinity(0))}; {args.train_images} training images, {args.score_images} scored")
    print()
    print("| training in | OMP_WAIT_POLICY | score alone p50 / p95 ms | score beside training p50 / p95 ms (n) "
          "| training alone s | training beside scoring s |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for where, policy, r in rows:
        print(
            f"| {'a thread (the service)' if where == 'thread' else 'another process (a worker)'} | {policy} "
            f"| {r['alone_p50']:.1f} / {r['alone_p95']:.1f} | {r['beside_p50']:.1f} / {r['beside_p95']:.1f}"
            f" ({r['beside_n']}) | {r['fit_alone']:.1f} | {r['fit_beside']:.1f} |"
        )
    if args.repeat > 1:
        for where in ("thread", "process"):
            for policy in ("PASSIVE", "unset"):
                got = [r for w, p, r in rows if (w, p) == (where, policy)]
                med = {k: statistics.median(r[k] for r in got) for k in ("beside_p50", "fit_beside")}
                print(f"{where}, {policy}: medians of {len(got)}: beside p50 {med['beside_p50']:.1f} ms, "
                      f"training beside {med['fit_beside']:.1f} s")  # fmt: skip


if __name__ == "__main__":
    main()
