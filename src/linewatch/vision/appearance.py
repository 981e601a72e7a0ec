"""What a photo looks like apart from its defects, for the drift watch (``linewatch.core.drift``): each image's
*look* (the whole image's embedding, the mean of the scoring pass's feature grid, L2-normalised: the same vector the
defect search stores for the whole part) and its *brightness* (the mean luminance of the model's input, 0 to 1).

A model keeps them for the good images its thresholds were set on, beside their scores (``calibration_scores``:
``brightness`` and ``vectors``), so that a station's recent photos can be compared with those photos and not only
with their scores. Scores alone miss what the model's features are blind to, though defects then hide: on
magnetic_tile a lamp 20-30 % dimmer moves the scores' shift AUROC by 0.06 while the brightness moves it by 0.2-0.3,
and a lens that lost contrast lowers the scores (0.35) while the look moves away (0.86). See docs/benchmarks.md,
"What the photos look like". numpy only: the ONNX Runtime path has them too."""

from __future__ import annotations

import base64

import numpy as np

from linewatch.errors import ModelFileError
from linewatch.vision.images import IMAGENET_MEAN, IMAGENET_STD

#: the looks a manifest keeps (evenly thinned beyond it): 500 x 176 float16 are 176 kB, and a nearest neighbour among
#: 500 photos is as telling as among thousands
MAX_LOOKS = 500
_LUMA = np.array([0.299, 0.587, 0.114], np.float64)  # ITU-R BT.601, as Pillow's "L"


def brightness(inputs: np.ndarray) -> np.ndarray:
    """The mean luminance (0 to 1) of each preprocessed image of a batch ``(B, 3, H, W)``, ImageNet-normalised as the
    backbone sees it (a grayscale photo's three channels are equal: its own mean gray)."""
    x = np.asarray(inputs)
    means = x.reshape(x.shape[0], x.shape[1], -1).mean(2, dtype=np.float64)
    return (means * IMAGENET_STD.astype(np.float64) + IMAGENET_MEAN.astype(np.float64)) @ _LUMA


def image_vector(features: np.ndarray) -> np.ndarray:
    """The look of one image from its ``features`` grid ``(C, g, g)``: the mean over cells, L2-normalised (float32),
    as ``embeddings.embed``'s image vector."""
    v = np.asarray(features, np.float32).reshape(features.shape[0], -1).mean(1)
    return (v / max(float(np.linalg.norm(v)), 1e-12)).astype(np.float32)


def encode(vectors: np.ndarray) -> dict:
    """Looks for a JSON manifest: float16, base64 (a tenth of the text of a list of numbers)."""
    v = np.ascontiguousarray(vectors, dtype="<f2")
    return {"dtype": "float16", "shape": list(v.shape), "data": base64.b64encode(v.tobytes()).decode("ascii")}


def decode(record: dict | None) -> np.ndarray | None:
    """The looks ``encode`` wrote (float32, ``(n, C)``), or None when there are none; a damaged record is the model's
    error."""
    if record is None:
        return None
    try:
        n, c = (int(s) for s in record["shape"])
        raw = base64.b64decode(record["data"], validate=True)
        if record.get("dtype") != "float16" or len(raw) != 2 * n * c:
            raise ValueError("size")
        v = np.frombuffer(raw, dtype="<f2").reshape(n, c).astype(np.float32)
    except (KeyError, TypeError, ValueError) as e:
        raise ModelFileError(f"the kept looks of the good images are damaged ({e})") from None
    if not np.isfinite(v).all():
        raise ModelFileError("the kept looks of the good images are damaged (not finite)")
    return v


def thinned(values: list, limit: int = MAX_LOOKS) -> list:
    """At most ``limit`` of ``values``, evenly spaced (the same picks for two lists of one length)."""
    if len(values) <= limit:
        return list(values)
    pick = np.linspace(0, len(values) - 1, limit).round().astype(int)
    return [values[i] for i in pick]


def kept_looks(vectors, brightness_values) -> dict:
    """The manifest's fields for the looks of the good images (``calibration_scores``): ``brightness`` (a list) and
    ``vectors`` (``encode``), thinned together to ``MAX_LOOKS`` (the same images); each left out when there is none
    (an export older than the search embeddings has no vectors, its images still a brightness)."""
    out: dict = {}
    if brightness_values is not None and len(brightness_values):
        pick = thinned(list(range(len(brightness_values))))
        out["brightness"] = [round(float(brightness_values[i]), 6) for i in pick]
    if vectors is not None and len(vectors):
        vectors = np.asarray(vectors, np.float32)
        out["vectors"] = encode(vectors[thinned(list(range(len(vectors))))])
    return out


def kept_reference_looks(m: dict):
    """The looks of the good images a model's thresholds were set on (``linewatch.core.drift.Looks``), from its
    manifest's ``calibration_scores``; empty when it keeps none (trained before they were kept)."""
    from linewatch.core.drift import Looks

    kept = m.get("calibration_scores")
    if not isinstance(kept, dict):
        return Looks()
    lit = kept.get("brightness")
    ok = isinstance(lit, list) and all(isinstance(v, int | float) for v in lit)
    return Looks(decode(kept.get("vectors")), np.asarray(lit, np.float64) if ok and lit else None)
