"""The vision engine's methods and their parameters: the one list the detectors' constructors, the command
line, the API's training schema and save/load all read. Light to import (no torch)."""

from __future__ import annotations

from linewatch.core.params import Param, Params
from linewatch.core.registry import Registry
from linewatch.errors import LinewatchError
from linewatch.vision.cpu import SEARCH_MODES

DEFAULT_BACKBONE = "efficientnet_lite0"
DEFAULT_METHOD = "combined"
NAME = r"[A-Za-z0-9_.-]{1,100}"  # a timm model or layer name


class DetectorParams(Params):
    backbone: str = Param(DEFAULT_BACKBONE, "timm model name", pattern=NAME)
    layers: list[str] | None = Param(
        None, "backbone layers to tap, comma separated (default: the backbone's own)", pattern=NAME
    )
    image_size: int = Param(256, "images are resized to N x N (N x N pixels in all with keep_aspect)", ge=32, le=2048)
    keep_aspect: bool = Param(
        True,
        "inputs follow the training images' median aspect ratio (about N x N pixels in all) instead of being "
        "squashed to a square; near-square images (4:5 to 5:4) and center crops stay square",
    )
    center_crop: int | None = Param(None, "then center-cropped to N x N", ge=32, le=2048)
    reducing_gap: float = Param(
        1.5,
        "an image more than this many times the input size is first shrunk by a whole factor (a box filter), then "
        "resized the rest of the way (Pillow's reducing_gap: 3x faster for a 5 MP photo); 0 = one antialiased resize",
        ge=0,
        le=16,
    )
    weights: str | None = Param(None, "backbone checkpoint PATH, or 'hub' to download timm's (online)", api=False)
    inspect_area: str | None = Param(
        None,
        "mask image PATH of the area to inspect, drawn on a training photo at its size: white = inspected, black = "
        "ignored (a printed date code, a label, the fixture or tray); the model keeps a copy",
        api=False,
    )
    holdout: float = Param(0.1, "fraction of good images held out to set the threshold", ge=0, lt=0.9)
    false_alarm_rate: float = Param(0.01, "target false-alarm rate of the threshold", gt=0, lt=1)
    min_region_area: int = Param(16, "smallest defect region kept, input pixels", ge=1)
    sigma: float = Param(4.0, "Gaussian smoothing of the anomaly map, input pixels", ge=0, le=64)
    batch_size: int = Param(8, "images per forward pass", ge=1, le=512)
    seed: int = Param(0, "seed of the held-out split and the coreset", ge=0, le=2**32 - 1)
    self_check: bool = Param(
        True, "after training, score defects painted on the held-out good images (a check needing no real defects)"
    )
    search_vectors: str = Param(
        "crop",
        "defect search vectors: regions = each region's pooled residuals and extent; crop = those blended with a "
        "crop around the top region re-embedded by the backbone (one more pass at 64 px) and the whole image",
        choices=("regions", "crop"),
    )


class PatchCoreParams(DetectorParams):
    coreset_ratio: float = Param(0.01, "PatchCore: memory bank as a fraction of the training patches", gt=0, le=1)
    max_bank: int = Param(2048, "PatchCore: memory bank cap (patches)", ge=16, le=1_000_000, cli_name="bank_size")
    num_neighbors: int = Param(9, "PatchCore: bank neighbours that re-weight the image score", ge=1, le=64)
    neighbourhood: int = Param(3, "PatchCore: patch neighbourhood aggregated into each feature", ge=1, le=9)
    pool_limit: int = Param(400_000, "PatchCore: patches kept in the coreset's candidate pool", ge=64)
    skip_covered: bool = Param(
        True, "PatchCore: once the pool was cut, skip patches the bank already covers (faster on large sets)"
    )
    search: str = Param(
        "auto",
        "PatchCore: nearest-bank-entry search; int8 = an 8-bit product picks the two nearest entries and both are "
        "measured exactly (the search about 2x faster); pca = a product along the bank's 64 principal axes picks four, "
        "measured exactly (faster than int8 on CPUs without VNNI); exact = float32 throughout; auto = int8 where the "
        "training CPU has 8-bit dot products (VNNI, AMX, Arm's dot product), else pca",
        choices=SEARCH_MODES,
    )
    search_step: int = Param(
        2,
        "PatchCore: coarse-to-fine search; every Nth patch in each direction is searched, the others interpolated "
        "between them, and the highest-scoring share of those (refine) searched too; 1 = every patch",
        ge=1,
        le=4,
    )
    refine: float = Param(
        0.1,
        "PatchCore: share of the interpolated patches searched too, highest first (with search_step > 1)",
        ge=0,
        le=1,
    )
    auto: str = Param(
        "bank",
        "PatchCore: settings chosen from the good images by the self-check (defects painted on held-out images): "
        "off; bank = a bank of twice bank_size too, kept when clearly better (or not clearly worse, below a saturated "
        "self-check); size = bank, with the input size first chosen between image_size and 5/4 of it by fits on 64 "
        "of the training images (about 20 s more; for thin defects); full = bank, the coarser layers "
        "8,16 and a 5/4 finer input too (two more fits); with method combined, bank, size and full also choose "
        "PaDiM's share in the image score (whole, half or none)",
        choices=("off", "bank", "size", "full"),
    )


class PadimParams(DetectorParams):
    n_features: int = Param(100, "PaDiM: random feature channels kept", ge=1, le=2048)
    cov_block: int = Param(
        2,
        "PaDiM: one covariance per N x N block of patch positions, each position keeping its own mean "
        "(1 = one per position, as in the paper: 4x the cost per image)",
        ge=1,
        le=16,
    )


class AutoParams(PatchCoreParams, PadimParams):
    """The parameters of the methods that fit both PatchCore and PaDiM (auto, combined): both's."""


def check_across(values: dict) -> None:
    """The rules between a detector's checked parameters (LinewatchError): the detectors apply them before a fit,
    and the service before it queues a training."""
    crop = values["center_crop"]
    if crop is not None and crop > values["image_size"]:
        raise LinewatchError(f"center crop {crop} must be between 32 and the image size ({values['image_size']})")
    side = crop if crop is not None else values["image_size"]
    if values["min_region_area"] > side * side:  # keep_aspect's input holds about as many pixels
        raise LinewatchError(
            f"min_region_area {values['min_region_area']} is more than the model input's {side * side} pixels "
            f"({side} x {side}): no region could ever be kept"
        )
    if 0 < values["reducing_gap"] <= 1:
        raise LinewatchError(f"reducing_gap must be 0 (one resize) or above 1, not {values['reducing_gap']:g}")


METHODS = Registry("vision")
METHODS.add(
    "patchcore",
    PatchCoreParams,
    "linewatch.vision.patchcore:PatchCore",
    "nearest-neighbour memory bank of good patches",
    "vision",
)
METHODS.add(
    "padim",
    PadimParams,
    "linewatch.vision.padim:Padim",
    "a Gaussian per patch position",
    "vision",
)
METHODS.add(
    "auto",
    AutoParams,
    "linewatch.vision.methodchoice:MethodChoice",
    "PatchCore or PaDiM, whichever finds defects painted on held-out good images better (both are fitted)",
    "vision",
)
METHODS.add(
    "combined",
    AutoParams,
    "linewatch.vision.methodchoice:Combined",
    "PatchCore and PaDiM fitted on one pass: the image score adds the two (each over its own threshold), the map "
    "is PatchCore's (the default)",
    "vision",
)
