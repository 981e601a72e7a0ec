"""``search="auto"``: the training CPU picks the nearest-bank-entry search (int8 with 8-bit dot products, else pca),
and the model keeps what was picked, with why, wherever it goes."""

import json
import shutil

import numpy as np
import pytest
import torch

from linewatch.vision import cpu
from linewatch.vision.cpu import cpu_flags, resolve_search
from linewatch.vision.saving import load

X86_VNNI = "processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu sse2 avx2 avx512f avx512_vnni amx_int8\n"
X86_AVX2 = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 avx2 fma\n\nprocessor\t: 1\nflags\t\t: x\n"
ARM = "processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd evtstrm aes crc32 atomics asimddp\n"


@pytest.mark.parametrize(
    ("flags", "want"),
    [
        ({"avx2", "avx512f", "avx512_vnni"}, "int8"),  # Cascade Lake and later Xeons
        ({"avx2", "avx_vnni"}, "int8"),  # Alder Lake and later desktops: VNNI without AVX-512
        ({"avx2", "amx_int8"}, "int8"),
        ({"asimd", "asimddp"}, "int8"),  # Arm with the dot product
        ({"AVX2", "AVX512VNNI"}, "int8"),  # numpy's names, where there is no /proc/cpuinfo
        ({"avx2", "fma", "avx512f"}, "pca"),  # Skylake-SP: AVX-512 but no VNNI
        ({"avx2", "fma"}, "pca"),  # first-generation EPYC, most office and plant PCs before 2021
        ({"asimd"}, "pca"),
        (set(), "pca"),
    ],
)
def test_auto_follows_the_cpus_8bit_dot_products(flags, want):
    mode, why = resolve_search("auto", flags)
    assert mode == want and why
    assert ("no 8-bit dot products" in why) == (want == "pca")


@pytest.mark.parametrize("mode", ["int8", "pca", "exact"])
def test_a_search_asked_for_stays_whatever_the_cpu(mode):
    assert resolve_search(mode, {"avx512_vnni"}) == (mode, None)
    assert resolve_search(mode, set()) == (mode, None)


def test_cpu_flags_read_x86_and_arm_cpuinfo_and_fall_back_to_torchs_capabilities(tmp_path):
    for text, has in ((X86_VNNI, "avx512_vnni"), (X86_AVX2, "avx2"), (ARM, "asimddp")):
        path = tmp_path / "cpuinfo"
        path.write_text(text)
        assert has in cpu_flags(str(path))
    assert "x" not in cpu_flags(str(tmp_path / "cpuinfo"))  # the first processor's line only
    assert resolve_search("auto", cpu_flags(str(path)))[0] == "int8"
    path.write_text(X86_AVX2)
    assert resolve_search("auto", cpu_flags(str(path)))[0] == "pca"
    # no such file (Windows, macOS): torch's capabilities (cpuinfo), else numpy's runtime dispatch names
    fallback = cpu_flags(str(tmp_path / "missing"))
    assert fallback == {k for k, v in torch.cpu.get_capabilities().items() if v is True}
    assert ("avx2" in fallback) == bool(torch.cpu.get_capabilities().get("avx2"))


def test_without_cpuinfo_torch_tells_avx_vnni_and_arms_dot_product_and_numpy_is_the_last_resort(tmp_path, monkeypatch):
    missing = str(tmp_path / "missing")
    # an Alder Lake desktop on Windows: numpy's table has no AVX-VNNI, torch's cpuinfo has
    alder = {"avx2": True, "avx_vnni": True, "avx512_vnni": False, "amx_int8": False, "l2_cache_size": 1 << 20}
    monkeypatch.setattr(cpu, "_torch_capabilities", lambda: alder)
    assert cpu_flags(missing) == {"avx2", "avx_vnni"}
    assert resolve_search("auto", cpu_flags(missing))[0] == "int8"
    monkeypatch.setattr(cpu, "_torch_capabilities", lambda: {"neon": True, "dot": True, "sve": False})
    assert resolve_search("auto", cpu_flags(missing))[0] == "int8"  # an Arm Mac or Windows on Arm
    monkeypatch.setattr(cpu, "_torch_capabilities", lambda: {"avx2": True, "avx_vnni": False, "fma3": True})
    assert resolve_search("auto", cpu_flags(missing))[0] == "pca"
    monkeypatch.setattr(cpu, "_torch_capabilities", lambda: None)  # no torch (an ONNX-only install)
    fallback = cpu_flags(missing)
    assert fallback and fallback == {f.upper() for f in fallback}


@pytest.fixture(params=[({"avx2", "fma"}, "pca"), ({"avx2", "avx512_vnni"}, "int8")], ids=["avx2", "vnni"])
def cpu_like(request, monkeypatch):
    flags, want = request.param
    monkeypatch.setattr(cpu, "cpu_flags", lambda: set(flags))
    return want


def test_a_model_keeps_the_search_its_training_cpu_picked(synthetic, tmp_path, cpu_like, monkeypatch):
    from linewatch.vision.datasets import load_dataset
    from linewatch.vision.patchcore import PatchCore
    from linewatch.vision.saving import save

    det = PatchCore(image_size=96, auto="off", self_check=False).fit(load_dataset(synthetic).train[:8])
    assert det.get_params()["search"] == "auto"  # what was asked stays, the fit resolved it
    assert det.params_["search"] == det._graph.search == cpu_like
    note = det.train_info_["search"]
    assert note["asked"] == "auto" and note["chosen"] == cpu_like and note["reason"]
    save(det, tmp_path / "m")
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert manifest["hyperparameters"]["search"] == cpu_like and manifest["training"]["search"] == note
    # loaded on a machine of the other kind, the model scores as trained: its search does not follow the new CPU
    monkeypatch.setattr(cpu, "cpu_flags", lambda: {"avx512_vnni"} if cpu_like == "pca" else set())
    again = load(tmp_path / "m")
    assert again.params_["search"] == again._graph.search == cpu_like


def test_an_asked_search_carries_no_note(synthetic):
    from linewatch.vision.datasets import load_dataset
    from linewatch.vision.patchcore import PatchCore

    det = PatchCore(image_size=96, auto="off", self_check=False, search="pca").fit(load_dataset(synthetic).train[:8])
    assert det.params_["search"] == "pca" and "search" not in det.train_info_


def test_the_default_combined_model_and_its_automatic_choice_resolve_it_too(synthetic, cpu_like):
    """The default method (combined) with the bank choice: the resolved search reaches PatchCore's part, the combined
    model's parameters and its training record, so the export builds the same graph."""
    from linewatch.vision.datasets import load_dataset
    from linewatch.vision.saving import create_detector

    det = create_detector("combined", image_size=96, max_bank=32, self_check=False)
    det.fit(load_dataset(synthetic).train[:10])
    patchcore = det._parts[0]
    assert det.params_["search"] == patchcore.params_["search"] == patchcore._graph.search == cpu_like
    assert det.train_info_["search"]["chosen"] == cpu_like and "auto" in det.train_info_


def _onnx_domains(path) -> set[str]:
    import onnx

    return {n.domain for n in onnx.load(str(path)).graph.node}


@pytest.fixture(scope="module")
def small_int8(synthetic, tmp_path_factory):
    """A combined model (the default method) trained with the int8 search, saved."""
    from linewatch.vision.datasets import load_dataset
    from linewatch.vision.saving import create_detector, save

    det = create_detector("combined", image_size=96, max_bank=32, auto="off", self_check=False, search="int8")
    return save(det.fit(load_dataset(synthetic).train[:10]), tmp_path_factory.mktemp("m") / "int8")


def test_export_retargets_a_model_to_another_cpus_search(small_int8, synthetic, tmp_path):
    """A model trained where int8 suits, exported for a CPU without VNNI: the graph and the manifest take pca, the
    PyTorch path follows, ONNX Runtime scores as PyTorch does, and the bank and thresholds are the same."""
    pytest.importorskip("onnxruntime")
    from linewatch.vision.export import export_onnx
    from linewatch.vision.runtime import OnnxModel

    model = tmp_path / "m"
    shutil.copytree(small_int8, model)
    before = load(model)
    export_onnx(model)
    assert "com.microsoft" in _onnx_domains(model / "model.onnx")  # the 8-bit product is ONNX Runtime's operator

    export_onnx(model, search="pca")
    assert "com.microsoft" not in _onnx_domains(model / "model.onnx")
    manifest = json.loads((model / "manifest.json").read_text())
    assert manifest["hyperparameters"]["search"] == "pca"
    after = load(model)
    assert after.params_["search"] == after._parts[0]._graph.search == "pca"
    assert torch.equal(after._parts[0].memory_bank_, before._parts[0].memory_bank_)
    assert after.calibration_.to_dict() == before.calibration_.to_dict()
    images = [p for d in sorted((synthetic / "test").iterdir()) for p in sorted(d.iterdir())[:2]]
    torch_scores = np.array([p.score for p in after.predict(images)])
    onnx_scores = np.array([p.score for p in OnnxModel(model).predict(images)])
    np.testing.assert_allclose(onnx_scores, torch_scores, rtol=1e-3, atol=1e-3)
    # the same images scored by the int8 search: nearly the same scores (both measure their picks exactly)
    int8_scores = np.array([p.score for p in before.predict(images)])
    assert np.abs(int8_scores - torch_scores).max() <= 0.02 * np.abs(int8_scores).max()


def test_export_search_is_refused_where_it_cannot_apply(small_int8, synthetic, tmp_path, cli_here):
    from linewatch.errors import LinewatchError
    from linewatch.vision.export import export_onnx
    from linewatch.vision.methodchoice import set_search

    model = tmp_path / "m"
    shutil.copytree(small_int8, model)
    with pytest.raises(LinewatchError, match="leave out --out"):
        export_onnx(model, out=tmp_path / "elsewhere.onnx", search="pca")
    assert not (tmp_path / "elsewhere.onnx").exists()
    assert json.loads((model / "manifest.json").read_text())["hyperparameters"]["search"] == "int8"
    with pytest.raises(LinewatchError, match="not a search setting"):
        set_search(load(model), bank=4)

    from linewatch.vision.datasets import load_dataset
    from linewatch.vision.padim import Padim
    from linewatch.vision.saving import save

    padim = save(Padim(image_size=96).fit(load_dataset(synthetic).train[:8]), tmp_path / "padim")
    r = cli_here("export", padim, "--search", "pca")
    assert r.exit_code == 2 and "no memory bank" in r.stderr
    r = cli_here("export", model, "--search", "pca")
    assert r.exit_code == 0, r.stderr[-2000:]
    assert load(model).params_["search"] == "pca"


@pytest.mark.parametrize(
    ("search", "flags", "says"),
    [
        ("int8", {"avx2"}, "--search pca"),  # trained where VNNI is, scored where it is not
        ("pca", {"avx512_vnni"}, "--search int8"),
        ("exact", {"avx2"}, "--search pca"),
        (None, {"avx512_vnni"}, "--search int8"),  # saved before the searches existed: exact
        ("int8", {"avx512_vnni"}, None),
        ("pca", {"avx2"}, None),
    ],
)
def test_a_hint_names_the_faster_search_for_this_cpu(search, flags, says):
    from linewatch.vision.cpu import search_hint

    hint = search_hint(search, flags)
    assert (hint is None) == (says is None)
    if says:
        assert says in hint and "linewatch export MODEL" in hint


def test_scoring_an_export_made_for_another_cpu_says_how_to_retarget_it(small_int8, synthetic, tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    from typer.testing import CliRunner

    from linewatch.cli import app
    from linewatch.vision.export import export_onnx
    from linewatch.vision.runtime import OnnxModel

    model = tmp_path / "m"
    shutil.copytree(small_int8, model)
    export_onnx(model)
    image = str(next((synthetic / "test" / "good").iterdir()))
    monkeypatch.setattr(cpu, "cpu_flags", lambda: {"avx2", "fma"})
    assert OnnxModel(model).search == "int8" and "--search pca" in OnnxModel(model).search_hint
    r = CliRunner().invoke(app, ["predict", str(model), image, "--json"])
    assert r.exit_code == 0, r.output
    assert f"linewatch export {model} --search pca" in " ".join(r.stderr.split())
    assert json.loads(r.stdout.strip().splitlines()[-1])["verdict"]  # stdout holds the results alone
    r = CliRunner().invoke(app, ["evaluate", str(model), str(synthetic), "--engine", "onnx"])
    assert r.exit_code == 0, r.output
    assert f"linewatch export {model} --search pca" in " ".join(r.stderr.split())
    monkeypatch.setattr(cpu, "cpu_flags", lambda: {"avx2", "avx512_vnni"})
    assert OnnxModel(model).search_hint is None
    r = CliRunner().invoke(app, ["predict", str(model), image, "--json"])
    assert r.exit_code == 0 and "--search" not in r.stderr
    export_onnx(model, search="pca")  # retargeted: no hint on the CPU it was retargeted for
    monkeypatch.setattr(cpu, "cpu_flags", lambda: {"avx2", "fma"})
    assert OnnxModel(model).search_hint is None


def test_a_model_without_a_bank_has_no_search_to_hint_at(synthetic, tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    from linewatch.vision.datasets import load_dataset
    from linewatch.vision.export import export_onnx
    from linewatch.vision.padim import Padim
    from linewatch.vision.runtime import OnnxModel
    from linewatch.vision.saving import save

    path = save(Padim(image_size=96).fit(load_dataset(synthetic).train[:8]), tmp_path / "padim")
    export_onnx(path)
    monkeypatch.setattr(cpu, "cpu_flags", lambda: set())
    m = OnnxModel(path)
    assert m.search is None and m.search_hint is None


def test_the_service_logs_the_hint_when_it_loads_such_a_model(small_int8, tmp_path, monkeypatch, caplog):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("sqlalchemy")
    from linewatch.services.context import ModelCache
    from linewatch.vision.export import export_onnx

    model = tmp_path / "m"
    shutil.copytree(small_int8, model)
    export_onnx(model)
    monkeypatch.setattr(cpu, "cpu_flags", lambda: {"avx2"})
    with caplog.at_level("WARNING", logger="linewatch.models"):
        ModelCache().get(7, model)
    assert "model version 7: this model searches its bank in 8 bits" in caplog.text
    assert f"linewatch export {model} --search pca" in caplog.text
