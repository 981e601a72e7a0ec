"""The estimator contract (linewatch.core.estimator), checked on every method of every engine's registry and on the
ONNX runtime model, in the spirit of scikit-learn's ``check_estimator``.

An engine joins by appending ``(its registry, a factory of its test data)`` to ``ENGINES``: the factory gets a
scratch directory and returns an :class:`EngineData` (tiny data and settings, and how to save, load and score).
"""

from __future__ import annotations

import copy
import inspect
import json
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from linewatch.core.estimator import Estimator, NotFittedError
from linewatch.core.extras import MissingExtra
from linewatch.core.modelfiles import MANIFEST
from linewatch.core.params import Spec
from linewatch.core.registry import Entry, Registry
from linewatch.errors import LinewatchError, ModelFileError
from linewatch.maintenance.methods import METHODS as MAINTENANCE_METHODS
from linewatch.sensors.methods import METHODS as SENSOR_METHODS
from linewatch.vision.cpu import resolve_search
from linewatch.vision.methods import METHODS as VISION_METHODS


@dataclass
class EngineData:
    """What the checks need from one engine."""

    train: Sequence
    test: Sequence
    params: dict[str, Any]  # small settings for speed; those a method does not declare are left out
    save: Callable[[Any, Path], Path]
    load: Callable[[Path], Any]
    outputs: Callable[[Any, Sequence], dict[str, np.ndarray]]  # what a user reads from a fitted model
    # parameters ``fit`` resolves from their default (None or "auto"): name -> check(fitted estimator, resolved value)
    resolved: dict[str, Callable[[Any, Any], bool]] = field(default_factory=dict)
    # uses of a model that need it fitted: each gets (estimator, scratch dir)
    needs_fit: list[Callable[[Any, Path], Any]] = field(default_factory=list)
    bad_combinations: list[dict[str, Any]] = field(default_factory=list)  # each valid alone, not together
    refit_params: list[dict[str, Any]] = field(default_factory=list)  # set on a fitted model, then fit again
    runtime: Callable[[Path], Any] | None = None  # an exported runtime model from a saved model directory
    accepted: list[dict[str, Any]] = field(default_factory=list)  # values of other types users pass, fit takes
    # learned entries left out of the state comparisons ("attr_.key", or "attr_" whole): timings, and library
    # objects whose internals are not comparable (an optimizer's state keyed by tensors); outputs still are
    volatile: tuple[str, ...] = ()


def make_vision_data(tmp: Path) -> EngineData:
    from linewatch.vision.backbones import offline_weights_path
    from linewatch.vision.export import export_onnx
    from linewatch.vision.runtime import open_model
    from linewatch.vision.saving import load, save
    from linewatch.vision.synthetic import add_defect, good_part

    rng = np.random.default_rng(0)
    train, test = [], []
    for i in range(10):
        train.append(tmp / f"train-{i:02d}.png")
        good_part(rng, 64).save(train[-1])
    for i, kind in enumerate(("good", "scratch", "spot")):
        test.append(tmp / f"test-{i}-{kind}.png")
        img = good_part(rng, 64)
        (img if kind == "good" else add_defect(rng, img, kind)[0]).save(test[-1])

    def outputs(model, images) -> dict[str, np.ndarray]:
        preds = model.predict(images)
        out = {
            "score": np.array([p.score for p in preds]),
            "normalized_score": np.array([p.normalized_score for p in preds]),
            "verdict": np.array([p.is_anomalous for p in preds]),
            "anomaly_map": np.stack([p.anomaly_map for p in preds]),
            "regions": np.array([len(p.regions) for p in preds]),
            "residual_layers": np.array(model.residual_layers or ()),  # how region embeddings are normalised
        }
        if all(p.embeddings is not None for p in preds):
            out["image_embedding"] = np.stack([p.embeddings.image for p in preds])
            out["peak_embedding"] = np.stack([p.embeddings.peak for p in preds])
        return out

    def runtime(model_dir: Path):
        export_onnx(model_dir)
        return open_model(model_dir)

    return EngineData(
        train=train,
        test=test,
        params={"image_size": 64, "n_features": 32},
        save=save,
        load=load,
        outputs=outputs,
        resolved={
            "layers": lambda est, v: isinstance(v, list) and len(v) > 0 and v == est.extractor_.layers,
            # PatchCore's bank search: ``auto`` becomes this CPU's faster one
            "search": lambda est, v: v == resolve_search("auto")[0],
        },
        needs_fit=[
            lambda est, tmp: est.predict(test),
            lambda est, tmp: list(est.raw_scores(test)),
            lambda est, tmp: est.graph(),
            lambda est, tmp: est.layer_channels(),
            lambda est, tmp: save(est, tmp / "unfitted"),
        ],
        bad_combinations=[{"image_size": 64, "center_crop": 96}],
        refit_params=[{"seed": 1, "layers": ["blocks.1", "blocks.2"]}],
        runtime=runtime,
        accepted=[{"weights": Path(offline_weights_path("efficientnet_lite0"))}],  # a checkpoint as a Path
        volatile=(
            "train_info_.seconds",
            "train_info_.self_check_seconds",
            "train_info_.auto.seconds",
            "train_info_.method_choice.seconds",
            "train_info_.combined.padim_seconds",
        ),
    )


def make_sensors_data(tmp: Path) -> EngineData:
    from linewatch.sensors.saving import load, save

    rng = np.random.default_rng(0)
    t = np.arange(500)
    a = 20 + 2 * np.sin(t / 30) + rng.normal(0, 0.2, t.size)
    train = np.column_stack([a, 5 + 0.1 * a + rng.normal(0, 0.05, t.size), 100 + rng.normal(0, 1, t.size)])
    test = train[-120:].copy() + rng.normal(0, 0.1, (120, 3))
    test[40:50, 1] += 3.0  # a burst on one sensor

    def outputs(model, values) -> dict[str, np.ndarray]:
        return {"score": model.score(np.asarray(values)), "verdict": model.predict(np.asarray(values))}

    return EngineData(
        train=train,
        test=test,
        params={"epochs": 2, "n_estimators": 20, "hidden": [8, 4]},
        save=lambda det, out: save(det, out),
        load=load,
        outputs=outputs,
        needs_fit=[
            lambda est, tmp: est.score(test),
            lambda est, tmp: est.predict(test),
            lambda est, tmp: save(est, tmp / "unfitted"),
        ],
        refit_params=[{"seed": 1, "windows": [5, 20]}],
        accepted=[{"windows": (10, 30)}],  # a tuple where a list is declared
        volatile=("model_",),  # the PyOD / scikit-learn object: compared through its scores, before and after
    )


def make_maintenance_data(tmp: Path) -> EngineData:
    """Run-to-failure histories with a 0/1 ``failure`` column (failure within 10 cycles): the RUL method reads the
    histories and ignores the label, the failure-risk method learns the label from the readings."""
    from linewatch.maintenance.saving import load, save
    from linewatch.maintenance.synthetic import run_to_failure

    train, _ = run_to_failure(8, seed=0, min_life=25, max_life=40, n_sensors=3)
    train["failure"] = (train.groupby("unit")["cycle"].transform("max") - train["cycle"] < 10).astype(int)
    test, _ = run_to_failure(4, seed=1, min_life=25, max_life=40, n_sensors=3, cut=True)

    def outputs(model, data) -> dict[str, np.ndarray]:
        p = model.predict(data)
        if model.method == "cnn":
            return {"unit": p.unit, "rul": p.rul, "rul_low": p.rul_low, "rul_high": p.rul_high}
        return {"unit": p.ids, "failure_probability": p.probability}

    return EngineData(
        train=train,
        test=test,
        params={"window": 5, "epochs": 2, "folds": 2, "channels": 4, "max_regimes": 2, "max_iter": 5, "tree_iter": 5},
        save=save,
        load=load,
        outputs=outputs,
        needs_fit=[lambda est, tmp: est.predict(test), lambda est, tmp: save(est, tmp / "unfitted")],
        refit_params=[{"seed": 1, "folds": 3}],
        volatile=("train_info_.seconds",),
    )


ENGINES: list[tuple[Registry, Callable[[Path], EngineData]]] = [
    (VISION_METHODS, make_vision_data),
    (SENSOR_METHODS, make_sensors_data),
    (MAINTENANCE_METHODS, make_maintenance_data),
]

CASES = [
    pytest.param(i, entry.name, id=f"{registry.engine}-{entry.name}")
    for i, (registry, _) in enumerate(ENGINES)
    for entry in registry
]
RUNTIME_CASES = CASES  # which engines export is known only once their data is made: the test skips the others

# Known bugs in src/: (engine, method, check) -> reason. The check is marked xfail(strict=True) there.
KNOWN_BUGS: dict[tuple[str, str, str], str] = {}


# -- the machinery --------------------------------------------------------------------------------------------


def _entry(i: int, name: str) -> Entry:
    return ENGINES[i][0][name]


def _cls(i: int, name: str) -> type:
    try:
        return _entry(i, name).load()
    except MissingExtra as e:
        pytest.skip(str(e))


def _known_bug(request, i: int, name: str, check: str) -> None:
    reason = KNOWN_BUGS.get((ENGINES[i][0].engine, name, check))
    if reason:
        request.applymarker(pytest.mark.xfail(strict=True, reason=reason))


def _small(data: EngineData, entry: Entry) -> dict[str, Any]:
    specs = entry.params.specs()
    return {k: v for k, v in data.params.items() if k in specs}


@pytest.fixture(scope="module")
def engine(tmp_path_factory) -> Callable[[int], EngineData]:
    """Each engine's data, made once per module."""
    made: dict[int, EngineData] = {}

    def get(i: int) -> EngineData:
        if i not in made:
            made[i] = ENGINES[i][1](tmp_path_factory.mktemp(f"{ENGINES[i][0].engine}-data"))
        return made[i]

    return get


@pytest.fixture(scope="module")
def fitted(engine, tmp_path_factory) -> Callable[[int, str], tuple[Any, Path]]:
    """(a fitted estimator with the engine's small settings, its saved model directory), made once per method."""
    made: dict[tuple[int, str], tuple[Any, Path]] = {}

    def get(i: int, name: str) -> tuple[Any, Path]:
        if (i, name) not in made:
            data = engine(i)
            est = _cls(i, name)(**_small(data, _entry(i, name)))
            given = est.get_params()
            returned = est.fit(data.train)
            fits[i, name] = given, returned
            made[i, name] = est, data.save(est, tmp_path_factory.mktemp(name) / "model")
        return made[i, name]

    fits: dict[tuple[int, str], tuple[dict, Any]] = {}
    get.fits = fits  # (the parameters before fit, what fit returned), for the checks of fit itself
    return get


def _frozen(value: Any) -> Any:
    """A deep copy to compare with later: tensors cloned, a torch module as its state and mode."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.nn.Module):
        return ("module", value.training, {k: t.detach().clone() for k, t in value.state_dict().items()})
    if torch is not None and isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, dict):
        return {k: _frozen(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_frozen(v) for v in value)
    return copy.deepcopy(value)


def _equal(a: Any, b: Any) -> bool:
    torch = sys.modules.get("torch")
    if type(a) is not type(b):
        return False
    if torch is not None and isinstance(a, torch.Tensor):
        return a.dtype == b.dtype and a.shape == b.shape and bool(torch.equal(a, b))
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and np.array_equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    if not isinstance(a, type) and type(a).__eq__ is object.__eq__ and a is not b:
        # a fitted library object (a scikit-learn or PyOD model, a Cython tree): compare what it would pickle
        return _equal(a.__getstate__(), b.__getstate__())
    return bool(a == b)


def _learned(est: Any, volatile: Sequence[str] = ()) -> dict[str, Any]:
    """The parameters and every public attribute ending in ``_`` (the learned state), frozen; without the
    ``volatile`` entries ("attr_.key")."""
    state = {k: _frozen(v) for k, v in vars(est).items() if k.endswith("_") and not k.startswith("_")}
    if isinstance(est, Estimator):
        state["get_params()"] = _frozen(est.get_params())
    for entry in volatile:
        *path, key = entry.split(".")
        node = state
        for part in path:  # "attr_.key" or a key deeper down, "attr_.outer.key"
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(key, None)
    return state


def _assert_unchanged(before: dict, after: dict, what: str) -> None:
    assert before.keys() == after.keys(), f"{what} added or removed attributes: {before.keys() ^ after.keys()}"
    changed = [k for k in before if not _equal(before[k], after[k])]
    assert not changed, f"{what} changed {changed}"


def _assert_same_outputs(a: dict[str, np.ndarray], b: dict[str, np.ndarray], rtol: float, atol: float) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].shape == b[k].shape, k
        if a[k].dtype.kind in "biu":
            assert np.array_equal(a[k], b[k]), f"{k}: {a[k]} != {b[k]}"
        else:
            np.testing.assert_allclose(a[k], b[k], rtol=rtol, atol=atol, err_msg=k)


def _bad_values(spec: Spec) -> list[tuple[str, Any]]:
    """(why, value) pairs that ``spec`` must refuse: outside each bound, off its choices, of the wrong type,
    missing when required."""
    p = spec.param
    out: list[tuple[str, Any]] = []
    if p.ge is not None:
        out.append(("below", p.ge - 1))
    if p.gt is not None:
        out.append(("at-open-low", p.gt))
    if p.le is not None:
        out.append(("above", p.le + 1))
    if p.lt is not None:
        out.append(("at-open-high", p.lt))
    if p.choices is not None:
        out.append(("not-a-choice", "no-such-choice"))
    if getattr(p, "pattern", None):  # text that must match a pattern
        out.append(("pattern", ["../no such/layer!"] if spec.is_list else "../no such/name!"))
    if spec.is_list:
        out.append(("type", 5))
    else:
        wrong = {int: "many", float: "much", bool: "yes", str: 12}.get(spec.base_type)
        if wrong is not None:
            out.append(("type", wrong))
        if spec.base_type is int:
            out.append(("fraction", 2.5))
    if not spec.optional:
        out.append(("none", None))
    return out


BAD = [
    pytest.param(i, entry.name, name, value, id=f"{registry.engine}-{entry.name}-{name}-{why}")
    for i, (registry, _) in enumerate(ENGINES)
    for entry in registry
    for name, spec in entry.params.specs().items()
    for why, value in _bad_values(spec)
]


# -- the constructor and the parameters ---------------------------------------------------------------------------


@pytest.mark.parametrize(("i", "name"), CASES)
def test_constructor_is_keyword_only_and_lists_exactly_the_declared_parameters(i, name):
    cls, specs = _cls(i, name), _entry(i, name).params.specs()
    assert cls.Params is _entry(i, name).params
    sig = inspect.signature(cls)
    assert list(sig.parameters) == list(specs)
    for pname, p in sig.parameters.items():
        assert p.kind is inspect.Parameter.KEYWORD_ONLY, pname
        assert p.default == specs[pname].default, pname
    est = cls()
    assert est.get_params() == {n: s.default for n, s in specs.items()}
    with pytest.raises(TypeError):
        cls(*[s.default for s in specs.values()][:1])  # positional: not an API


@pytest.mark.parametrize(("i", "name"), CASES)
def test_get_params_round_trips(i, name, engine):
    cls, data = _cls(i, name), engine(i)
    est = cls(**_small(data, _entry(i, name)))
    params = est.get_params()
    assert params.keys() == _entry(i, name).params.specs().keys()
    assert cls(**params).get_params() == params
    other = cls()
    assert other.set_params(**params) is other and other.get_params() == params
    assert est.config() == params  # before fit, config() is what was given
    assert type(est).__name__ in repr(est)


@pytest.mark.parametrize(("i", "name"), CASES)
def test_unknown_parameter_names_are_the_products_error(i, name):
    cls = _cls(i, name)
    with pytest.raises(LinewatchError, match="no_such_parameter") as e:
        cls(no_such_parameter=1)
    assert not isinstance(e.value, ValueError | TypeError)
    with pytest.raises(LinewatchError, match="no_such_parameter"):
        cls().set_params(no_such_parameter=1)


@pytest.mark.parametrize(("i", "name", "param", "value"), BAD)
def test_bad_value_is_stored_as_given_and_refused_by_fit(i, name, param, value, engine):
    cls, data = _cls(i, name), engine(i)
    est = cls(**{**_small(data, _entry(i, name)), param: value})  # the constructor validates nothing
    assert getattr(est, param) is value
    with pytest.raises(LinewatchError, match=param) as e:
        est.fit(data.train)
    assert not isinstance(e.value, ValueError | TypeError), type(e.value).__mro__
    assert not est.is_fitted


@pytest.mark.parametrize(("i", "name"), CASES)
def test_bad_combinations_are_refused_by_fit(i, name, engine):
    cls, data = _cls(i, name), engine(i)
    if not data.bad_combinations:
        pytest.skip("the engine declares no combinations to refuse")
    for combo in data.bad_combinations:
        est = cls(**{**_small(data, _entry(i, name)), **combo})
        with pytest.raises(LinewatchError) as e:
            est.fit(data.train)
        assert not isinstance(e.value, ValueError | TypeError)


@pytest.mark.parametrize(("i", "name"), CASES)
def test_values_users_pass_are_accepted(i, name, engine, request):
    cls, data = _cls(i, name), engine(i)
    if not data.accepted:
        pytest.skip("the engine declares no such values")
    _known_bug(request, i, name, "accepted")
    for values in data.accepted:
        est = cls(**{**_small(data, _entry(i, name)), **values}).fit(data.train)
        assert est.is_fitted and est.get_params().items() >= values.items()


# -- fit, predict and unfitted use ------------------------------------------------------------------------------


@pytest.mark.parametrize(("i", "name"), CASES)
def test_unfitted_use_raises_not_fitted(i, name, engine, tmp_path):
    cls, data = _cls(i, name), engine(i)
    assert issubclass(NotFittedError, LinewatchError)
    est = cls(**_small(data, _entry(i, name)))
    assert not est.is_fitted
    for use in data.needs_fit:
        with pytest.raises(NotFittedError, match="fit"):
            use(est, tmp_path)
    assert not list(tmp_path.iterdir()), "an unfitted model wrote files"


@pytest.mark.parametrize(("i", "name"), CASES)
def test_fit_returns_self_and_keeps_resolved_params(i, name, engine, fitted):
    cls, data, entry = _cls(i, name), engine(i), _entry(i, name)
    est, _ = fitted(i, name)
    given, returned = fitted.fits[i, name]
    assert returned is est
    assert est.is_fitted
    assert est.get_params() == given, "fit changed the constructor's parameters"
    assert set(est.params_) == set(entry.params.specs())
    for pname, spec in entry.params.specs().items():
        if pname in data.resolved and given[pname] in (None, "auto"):
            assert data.resolved[pname](est, est.params_[pname]), f"{pname} resolved to {est.params_[pname]!r}"
        else:
            assert est.params_[pname] == spec.validate(given[pname]), pname
    assert est.config() == est.params_
    clone = cls(**est.get_params())  # a clone is unfitted
    assert not clone.is_fitted


@pytest.mark.parametrize(("i", "name"), CASES)
def test_predict_does_not_mutate(i, name, engine, fitted):
    data = engine(i)
    est, _ = fitted(i, name)
    before = _learned(est, data.volatile)
    first = data.outputs(est, data.test)
    _assert_unchanged(before, _learned(est, data.volatile), "predict")
    again = data.outputs(est, data.test)
    _assert_same_outputs(first, again, rtol=0, atol=0)
    _assert_unchanged(before, _learned(est, data.volatile), "predicting again")


@pytest.mark.parametrize(("i", "name"), CASES)
def test_refit_after_set_params_equals_a_fresh_fit(i, name, engine, request):
    """Fit, use, change parameters with set_params, fit again: the same model as a fresh fit with those
    parameters (nothing learned or cached from the first fit survives)."""
    cls, data, entry = _cls(i, name), engine(i), _entry(i, name)
    if not data.refit_params:
        pytest.skip("the engine declares no parameters to refit with")
    _known_bug(request, i, name, "refit")
    failures = []
    for change in data.refit_params:
        est = cls(**_small(data, entry)).fit(data.train)
        data.outputs(est, data.test)  # used before the change, as a user would
        try:
            est.set_params(**change).fit(data.train)
            fresh = cls(**{**_small(data, entry), **change}).fit(data.train)
            assert est.params_ == fresh.params_
            _assert_unchanged(_learned(fresh, data.volatile), _learned(est, data.volatile), "the refit")
            _assert_same_outputs(data.outputs(est, data.test), data.outputs(fresh, data.test), rtol=1e-5, atol=1e-6)
        except Exception as e:  # every change is tried; the failure lists each that failed
            failures.append(f"set_params(**{change}) then fit: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
    assert not failures, "\n".join(failures)


# -- files and configuration ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("i", "name"), CASES)
def test_save_then_load_gives_the_same_scores(i, name, engine, fitted):
    data = engine(i)
    est, saved = fitted(i, name)
    again = data.load(saved)
    assert type(again) is type(est) and again.is_fitted
    assert again.config() == est.config()
    _assert_same_outputs(data.outputs(again, data.test), data.outputs(est, data.test), rtol=1e-6, atol=1e-6)


def _newer(saved: Path, dest: Path) -> Path:
    shutil.copytree(saved, dest)
    m = json.loads((dest / MANIFEST).read_text())
    m["format_version"] += 1
    (dest / MANIFEST).write_text(json.dumps(m))
    return dest


@pytest.mark.parametrize(("i", "name"), CASES)
def test_newer_format_version_is_refused_saying_upgrade(i, name, engine, fitted, tmp_path):
    data = engine(i)
    _, saved = fitted(i, name)
    with pytest.raises(ModelFileError, match="upgrade"):
        data.load(_newer(saved, tmp_path / "newer"))


@pytest.mark.parametrize(("i", "name"), CASES)
def test_config_is_json_and_rebuilds_the_same_model(i, name, engine, fitted):
    cls, data = _cls(i, name), engine(i)
    est, _ = fitted(i, name)
    text = json.dumps(est.config())
    rebuilt = cls(**json.loads(text)).fit(data.train)
    assert rebuilt.config() == est.config()
    _assert_same_outputs(data.outputs(rebuilt, data.test), data.outputs(est, data.test), rtol=1e-5, atol=1e-6)


# -- the exported runtime model ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def exported(engine, fitted, tmp_path_factory) -> Callable[[int, str], tuple[Any, Path]]:
    """(the runtime model, its directory): a copy of the saved model, exported, opened once per method."""
    made: dict[tuple[int, str], tuple[Any, Path]] = {}

    def get(i: int, name: str) -> tuple[Any, Path]:
        data = engine(i)
        if data.runtime is None:
            pytest.skip(f"the {ENGINES[i][0].engine} engine has no runtime export")
        if (i, name) not in made:
            _, saved = fitted(i, name)
            d = tmp_path_factory.mktemp(f"{name}-export") / "model"
            shutil.copytree(saved, d)
            made[i, name] = data.runtime(d), d
        return made[i, name]

    return get


@pytest.mark.parametrize(("i", "name"), RUNTIME_CASES)
def test_runtime_model_scores_as_the_estimator(i, name, engine, fitted, exported):
    from linewatch.vision.runtime import OnnxModel

    data = engine(i)
    est, _ = fitted(i, name)
    model, _ = exported(i, name)
    assert isinstance(model, OnnxModel)
    assert model.method == est.method
    for attr in ("predict", "iter_predict", "raw_scores", "preprocess", "calibration_", "has_embeddings"):
        assert hasattr(model, attr), attr
    want, got = data.outputs(est, data.test), data.outputs(model, data.test)
    assert got.keys() == want.keys()
    np.testing.assert_array_equal(got["verdict"], want["verdict"])
    np.testing.assert_allclose(got["score"], want["score"], rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize(("i", "name"), RUNTIME_CASES)
def test_runtime_predict_does_not_mutate_and_reopens_the_same(i, name, engine, exported):
    data = engine(i)
    model, d = exported(i, name)
    # ONNX Runtime sessions (the scoring graph's, the crop vectors') cannot be copied; they are not learned state
    before = {k: _frozen(v) for k, v in vars(model).items() if not k.endswith("session")}
    first = data.outputs(model, data.test)
    after = {k: _frozen(v) for k, v in vars(model).items() if not k.endswith("session")}
    _assert_unchanged(before, after, "runtime predict")
    _assert_same_outputs(first, data.outputs(model, data.test), rtol=0, atol=0)
    reopened = type(model)(d)
    _assert_same_outputs(first, data.outputs(reopened, data.test), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(("i", "name"), RUNTIME_CASES)
def test_runtime_refuses_a_newer_format_saying_upgrade(i, name, exported, tmp_path):
    from linewatch.vision.runtime import open_model

    model, d = exported(i, name)
    newer = _newer(d, tmp_path / "newer")
    with pytest.raises(ModelFileError, match="upgrade"):
        type(model)(newer)
    with pytest.raises(ModelFileError, match="upgrade"):
        open_model(newer)


@pytest.mark.parametrize(("i", "name"), RUNTIME_CASES)
def test_runtime_needs_an_export(i, name, fitted, exported):
    model, _ = exported(i, name)
    _, saved = fitted(i, name)  # saved, never exported
    with pytest.raises(ModelFileError, match="onnx"):
        type(model)(saved)
