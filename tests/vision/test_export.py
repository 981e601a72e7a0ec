import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from linewatch.vision.export import export_onnx
from linewatch.vision.runtime import OnnxModel, open_model
from linewatch.vision.saving import load


def _parity(model_dir, images, tol=1e-3):
    torch_preds = load(model_dir).predict(images)
    export_onnx(model_dir)
    onnx = open_model(model_dir)
    assert isinstance(onnx, OnnxModel)
    onnx_preds = onnx.predict(images)
    for a, b in zip(torch_preds, onnx_preds, strict=True):
        assert abs(a.score - b.score) <= tol * max(1.0, abs(a.score))
        assert np.abs(a.anomaly_map - b.anomaly_map).max() <= tol * max(1.0, float(np.abs(a.anomaly_map).max()))
        assert a.verdict == b.verdict
        assert len(a.regions) == len(b.regions)


def test_onnx_scores_equal_pytorch_on_synthetic(trained, synthetic, tmp_path):
    _, path = trained
    model = tmp_path / "m"
    shutil.copytree(path, model)
    images = [p for d in sorted((synthetic / "test").iterdir()) for p in sorted(d.iterdir())[:2]]
    _parity(model, images)


def test_padim_exports_too(synthetic, tmp_path):
    from linewatch.vision.datasets import load_dataset
    from linewatch.vision.padim import Padim
    from linewatch.vision.saving import save

    ds = load_dataset(synthetic)
    path = save(Padim(image_size=96).fit(ds.train[:12]), tmp_path / "padim")
    _parity(path, [s.path for s in ds.test[::5]])


def test_onnx_scores_equal_pytorch_on_real_images(tmp_path, bottle):
    from linewatch.vision.patchcore import PatchCore
    from linewatch.vision.saving import save

    train = sorted((bottle / "train" / "good").iterdir())[:24]
    path = save(PatchCore().fit(train), tmp_path / "bottle")
    images = [p for d in sorted((bottle / "test").iterdir()) for p in sorted(d.iterdir())[:3]]
    _parity(path, images)


def test_runtime_scores_without_torch(trained, synthetic, tmp_path):
    _, path = trained
    model = tmp_path / "m"
    shutil.copytree(path, model)
    export_onnx(model)
    code = (
        "import sys\n"
        "for m in ('torch', 'timm', 'faiss', 'sklearn', 'scipy', 'safetensors'): sys.modules[m] = None\n"
        "from linewatch.vision.runtime import open_model\n"
        f"m = open_model({str(model)!r})\n"
        f"p = m.predict([{str(synthetic / 'test' / 'spot' / '000.png')!r}])[0]\n"
        "print(p.verdict, len(p.regions), p.anomaly_map.shape)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[0] in ("anomalous", "good")


def test_onnx_model_rejects_a_tampered_file(trained, tmp_path):
    from linewatch.errors import ModelFileError

    _, path = trained
    model = tmp_path / "m"
    shutil.copytree(path, model)
    export_onnx(model)
    (model / "model.onnx").write_bytes(b"broken")
    with pytest.raises(ModelFileError, match="corrupt"):
        OnnxModel(model)


class _Grids(torch.nn.Module):
    """Four outputs shaped like a scoring graph's, the residuals moved in ``moved`` cells of a 16 x 16 grid."""

    def __init__(self, moved: int = 0):
        super().__init__()
        self.moved = moved

    def forward(self, x):
        res = x.mean(1, keepdim=True).expand(-1, 8, -1, -1)
        if self.moved:
            shift = torch.zeros_like(res)
            shift.view(res.shape[0], 8, -1)[:, :, : self.moved] = 5.0
            res = res + shift
        return x.amax((1, 2, 3)), x.mean(1), x, res


@pytest.mark.parametrize(("moved", "accepted"), [(0, True), (1, True), (5, True), (6, False), (256, False)])
def test_export_check_allows_a_few_tied_neighbours_but_not_a_wrong_graph(tmp_path, moved, accepted):
    from linewatch.errors import LinewatchError
    from linewatch.vision.export import _check

    example = torch.from_numpy(np.random.default_rng(0).standard_normal((1, 3, 16, 16)).astype(np.float32))
    path = str(tmp_path / "g.onnx")
    torch.onnx.export(_Grids(), (example,), path, input_names=["image"], opset_version=17, dynamo=False)
    if accepted:
        _check(_Grids(moved), path, example)
    else:
        with pytest.raises(LinewatchError, match="residuals differs"):
            _check(_Grids(moved), path, example)
