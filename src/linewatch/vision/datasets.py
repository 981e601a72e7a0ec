"""Finding images: MVTec AD layout (`train/good`, `test/<type>`, `ground_truth/<type>/<stem>_mask.png`)
or plain folders of images."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from linewatch.errors import DatasetError
from linewatch.vision.images import is_hidden, is_image_file

GOOD = "good"
#: what follows an image's stem in its mask's name under ground_truth/<type>/, in order of preference (any image
#: format): MVTec AD's "_mask", the same name (VisA as converted, a BMP beside a PNG photo), KolektorSDD2's "_GT"
MASK_SUFFIXES = ("_mask", "", "_GT", "_gt", "_label")


@dataclass(frozen=True)
class Sample:
    path: Path
    label: str  # "good" or the defect type
    mask_path: Path | None = None

    @property
    def is_anomalous(self) -> bool:
        return self.label != GOOD


@dataclass
class Dataset:
    root: Path
    layout: str  # "mvtec" or "folder"
    train: list[Path] = field(default_factory=list)
    test: list[Sample] = field(default_factory=list)

    def fingerprint(self) -> str:
        return fingerprint(self.train)


def fingerprint(paths: list[Path]) -> str:
    """sha256 over the training files' names and contents, in order."""
    h = hashlib.sha256()
    for p in paths:
        h.update(Path(p).name.encode())
        h.update(hashlib.sha256(Path(p).read_bytes()).digest())
    return h.hexdigest()


def images_in(folder: Path, recursive: bool = True) -> list[Path]:
    """The image files in ``folder`` (and below it), none hidden or in a hidden or system folder (``is_hidden``)."""
    it = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in it if not is_hidden(p.relative_to(folder).parts) and is_image_file(p))


def _mask_for(root: Path, label: str, image: Path) -> Path | None:
    if label == GOOD:
        return None
    gt = root / "ground_truth" / label
    for cand in (gt / f"{image.stem}_mask.png", gt / f"{image.stem}.png"):  # MVTec AD's, VisA's (as converted)
        if cand.is_file():
            return cand
    if not gt.is_dir():
        return None
    # other names and formats: KolektorSDD2's <stem>_GT.png, a BMP or TIFF mask, ...
    found: dict[str, Path] = {}
    for p in sorted(gt.iterdir()):
        if is_image_file(p):
            found.setdefault(p.stem, p)
    for suffix in MASK_SUFFIXES:
        if image.stem + suffix in found:
            return found[image.stem + suffix]
    return None


def _labelled(folder: Path, root_for_masks: Path | None) -> list[Sample]:
    samples = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not is_hidden((p.name,))):
        for img in images_in(sub):
            mask = _mask_for(root_for_masks, sub.name, img) if root_for_masks else None
            samples.append(Sample(img, sub.name, mask))
    return samples


def load_dataset(path: str | Path) -> Dataset:
    """A dataset from an MVTec-layout category, a folder of labelled subfolders, or a folder of images."""
    root = Path(path)
    if not root.exists():
        raise DatasetError(f"data path not found: {root}")
    if root.is_file():
        raise DatasetError(f"expected a folder of images, got a file: {root}")
    if (root / "train" / GOOD).is_dir() or (root / "test").is_dir():
        train = images_in(root / "train" / GOOD) if (root / "train" / GOOD).is_dir() else []
        test = _labelled(root / "test", root) if (root / "test").is_dir() else []
        ds = Dataset(root, "mvtec", train, test)
    else:
        subdirs = [p for p in root.iterdir() if p.is_dir() and not is_hidden((p.name,))]
        if any(p.name == GOOD for p in subdirs):
            # good/ and one folder per defect type: good images train, all of them are test samples
            test = _labelled(root, None)
            ds = Dataset(root, "folder", images_in(root / GOOD), test)
        else:
            ds = Dataset(root, "folder", images_in(root), [])
    if not ds.train and not ds.test:
        raise DatasetError(f"no images (png, jpg, bmp, tif) found under {root}")
    return ds


def expand_inputs(paths: list[str | Path]) -> list[Path]:
    """Image files named directly or found in named folders, in a stable order."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = images_in(p)
            if not found:
                raise DatasetError(f"no images found in {p}")
            out.extend(found)
        elif p.exists():
            out.append(p)
        else:
            raise DatasetError(f"path not found: {p}")
    return out
