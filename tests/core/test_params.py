"""Declared parameters refuse what no bound can catch: NaN passes every comparison, infinity is no setting."""

import math

import pytest

from linewatch.core.params import Param, Params
from linewatch.errors import LinewatchError


class Demo(Params):
    rate: float = Param(0.1, "a rate", gt=0, lt=1)
    margin: float = Param(1.0, "any number")
    steps: list[float] = Param([1.0], "numbers")
    seed: int = Param(0, "a seed", ge=0, le=2**32 - 1)
    parts: list[str] = Param(["a"], "some of a, b and c", choices=("a", "b", "c"))


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, "nan", "inf"])
def test_a_float_must_be_finite_within_its_bounds_or_without_any(value):
    for name in ("rate", "margin"):
        with pytest.raises(LinewatchError, match=f"{name} must be a finite number"):
            Demo.validate({name: value})
    with pytest.raises(LinewatchError, match="steps must be a finite number"):
        Demo.validate({"steps": f"1,{value}"})
    assert Demo.validate({"margin": -3e300, "steps": "2,1e-300"})["steps"] == [2.0, 1e-300]


def test_huge_integers_are_refused_by_their_bound_not_by_a_library():
    with pytest.raises(LinewatchError, match=r"seed 4294967296 is outside \[0, 4294967295\]"):
        Demo.validate({"seed": 2**32})
    with pytest.raises(LinewatchError, match="seed must be an integer"):
        Demo.validate({"seed": math.inf})


def test_the_api_schema_refuses_nan_in_a_json_body():
    import pydantic

    model = Demo.pydantic_model("DemoRequest")
    with pytest.raises(pydantic.ValidationError, match="finite number"):
        model.model_validate_json('{"margin": NaN}')
    assert model.model_validate({"margin": 2.5}).margin == 2.5


@pytest.mark.parametrize(
    ("engine", "args"),
    [
        ("sensors", ["--holdout", "nan"]),
        ("sensors", ["--threshold-margin", "nan"]),
        ("sensors", ["--seed", "4294967296"]),
        ("maintenance", ["--learning-rate", "nan"]),
        ("maintenance", ["--coverage", "inf"]),
    ],
)
def test_the_command_line_says_which_option(engine, args, tmp_path):
    from typer.testing import CliRunner

    from linewatch.cli import app

    data = tmp_path / "d.csv"
    data.write_text("t,a\n" + "".join(f"{i},{i % 7}\n" for i in range(200)))
    r = CliRunner().invoke(app, [engine, "fit", str(data), "--out", str(tmp_path / "m"), *args])
    assert r.exit_code == 2, r.output
    assert args[0].lstrip("-").replace("-", "_") in r.output and not (tmp_path / "m").exists()


def test_a_list_of_choices_holds_one_at_least_and_only_choices():
    """Choices of a list parameter apply to each item, on the command line (text) and in a request's schema."""
    import pydantic

    assert Demo.validate({"parts": "c,a"})["parts"] == ["c", "a"]
    with pytest.raises(LinewatchError, match="parts must be one of a, b, c, got 'd'"):
        Demo.validate({"parts": ["a", "d"]})
    with pytest.raises(LinewatchError, match="parts needs at least one of a, b, c"):
        Demo.validate({"parts": []})
    model = Demo.pydantic_model("DemoRequest")
    assert model(parts=["b"]).parts == ["b"]
    for bad in ([], ["d"]):
        with pytest.raises(pydantic.ValidationError):
            model(parts=bad)
