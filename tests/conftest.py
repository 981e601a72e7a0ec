import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
BOTTLE = SHARED_DATA / "mvtec_ad" / "bottle"

os.environ.setdefault("LINEWATCH_DEBUG", "")


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory) -> Path:
    """A small MVTec-layout category from the project's own generator."""
    from linewatch.vision.synthetic import make_dataset

    return make_dataset(tmp_path_factory.mktemp("data") / "washer", n_train=24, n_test_good=6, n_test_defect=4)


@pytest.fixture(scope="session")
def trained(synthetic, tmp_path_factory):
    """A PatchCore trained on the synthetic set at 128 px, saved to a model directory."""
    from linewatch.vision.datasets import load_dataset
    from linewatch.vision.patchcore import PatchCore
    from linewatch.vision.saving import save

    ds = load_dataset(synthetic)
    det = PatchCore(image_size=128).fit(ds.train)
    path = save(det, tmp_path_factory.mktemp("models") / "patchcore")
    return det, path


@pytest.fixture
def bottle() -> Path:
    """Real MVTec AD bottle images from ../shared/data, or a skip saying they are absent."""
    if not (BOTTLE / "train" / "good").is_dir():
        pytest.skip(f"real MVTec AD bottle data not found at {BOTTLE}")
    return BOTTLE
