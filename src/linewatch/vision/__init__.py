"""The vision engine: learn good parts from images, score new ones, localise defects.

Imports are lazy, so ``from linewatch.vision import OnnxModel`` works on a runtime-only install (no torch).
"""

from importlib import import_module

_EXPORTS = {
    "PatchCore": "linewatch.vision.patchcore",
    "Padim": "linewatch.vision.padim",
    "save": "linewatch.vision.saving",
    "load": "linewatch.vision.saving",
    "create_detector": "linewatch.vision.saving",
    "evaluate": "linewatch.vision.evaluation",
    "load_dataset": "linewatch.vision.datasets",
    "export_onnx": "linewatch.vision.export",
    "OnnxModel": "linewatch.vision.runtime",
    "open_model": "linewatch.vision.runtime",
    "recalibrate": "linewatch.vision.recalibration",
    "restore_calibration": "linewatch.vision.recalibration",
    "watch_drift": "linewatch.vision.recalibration",
    "Prediction": "linewatch.vision.scoring",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'linewatch.vision' has no attribute {name!r}")
