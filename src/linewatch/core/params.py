"""Parameters declared once. An estimator's parameters are a :class:`Params` class; its constructor, its
validation, the command-line options and the API's request schemas are all derived from that declaration,
so a parameter is added (or its bounds changed) in exactly one place.

Declarations need no heavy imports: the CLI builds its options without importing torch or PyOD.
"""

from __future__ import annotations

import math
import os
import re
import types
import typing
from dataclasses import dataclass
from typing import Any, ClassVar

from linewatch.errors import LinewatchError

_MISSING = object()


@dataclass(frozen=True)
class Param:
    """One parameter: default, a one-line help, bounds and choices (of a list parameter: of each item; a list of
    choices has at least one). ``expose=False`` keeps it out of the CLI and the API (for parameters only a library
    user or a loader sets, like a weights path)."""

    default: Any
    help: str
    ge: float | None = None
    le: float | None = None
    gt: float | None = None
    lt: float | None = None
    choices: tuple | None = None
    expose: bool = True
    cli_name: str | None = None  # a shorter or established option name (``bank_size`` for ``max_bank``)
    pattern: str | None = None  # text values (and list items) must match it in full
    api: bool = True  # False: a local-machine setting (a file path) the command line takes and the API does not
    min_items: int = 0  # a list parameter holds at least this many items


@dataclass(frozen=True)
class Spec:
    """A declared parameter with its name and resolved type."""

    name: str
    type: Any
    param: Param

    @property
    def default(self) -> Any:
        return self.param.default

    @property
    def help(self) -> str:
        return self.param.help

    @property
    def optional(self) -> bool:
        return _allows_none(self.type)

    @property
    def base_type(self) -> Any:
        """The type without ``None`` (``int | None`` -> ``int``)."""
        args = [a for a in typing.get_args(self.type) if a is not type(None)]
        if _is_union(self.type):
            return args[0] if len(args) == 1 else self.type
        return self.type

    @property
    def is_list(self) -> bool:
        return typing.get_origin(self.base_type) is list

    def validate(self, value: Any) -> Any:
        """The value coerced to the declared type, or LinewatchError naming the parameter and its bounds."""
        if value is None:
            if self.optional:
                return None
            raise LinewatchError(f"{self.name} needs a value")
        base = self.base_type
        try:
            if self.is_list:
                if isinstance(value, str):
                    value = [x.strip() for x in value.split(",") if x.strip()]
                (item,) = typing.get_args(base) or (str,)
                value = [item(x) for x in value]
            elif base is bool:
                if not isinstance(value, bool):
                    raise TypeError
            elif base is int:
                if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                    raise TypeError
                value = int(value)
            elif base is float:
                if isinstance(value, bool):
                    raise TypeError
                value = float(value)
            elif base is str:
                if isinstance(value, os.PathLike):  # a path parameter given as a Path
                    value = os.fspath(value)
                if not isinstance(value, str):
                    raise TypeError
        except (TypeError, ValueError, OverflowError):
            raise LinewatchError(f"{self.name} must be {_type_name(base)}, got {value!r}") from None
        numbers = value if isinstance(value, list) else [value]
        if any(isinstance(x, float) and not math.isfinite(x) for x in numbers):
            # NaN passes every bound (each comparison is false) and infinity is no setting: both would reach a fit
            raise LinewatchError(f"{self.name} must be a finite number, got {value!r}")
        p = self.param
        if p.pattern is not None:
            texts = value if isinstance(value, list) else [value] if isinstance(value, str) else []
            bad = [t for t in texts if not re.fullmatch(p.pattern, t)]
            if bad:
                raise LinewatchError(f"{self.name} {bad[0]!r} has characters it cannot have")
        if p.choices is not None:
            if isinstance(value, list) and not value:
                raise LinewatchError(f"{self.name} needs at least one of {', '.join(map(str, p.choices))}")
            bad = [x for x in (value if isinstance(value, list) else [value]) if x not in p.choices]
            if bad:
                raise LinewatchError(f"{self.name} must be one of {', '.join(map(str, p.choices))}, got {bad[0]!r}")
        if isinstance(value, list) and len(value) < p.min_items:
            raise LinewatchError(f"{self.name} needs at least {p.min_items} value(s), got {value!r}")
        for x in value if isinstance(value, list) else [value]:
            if isinstance(x, int | float) and not isinstance(x, bool):
                bad = (
                    (p.ge is not None and x < p.ge)
                    or (p.le is not None and x > p.le)
                    or (p.gt is not None and x <= p.gt)
                    or (p.lt is not None and x >= p.lt)
                )
                if bad:
                    raise LinewatchError(f"{self.name} {x} is outside {self.bounds()}")
        return value

    def bounds(self) -> str:
        p = self.param
        lo = f"[{p.ge}" if p.ge is not None else (f"({p.gt}" if p.gt is not None else "(-inf")
        hi = f"{p.le}]" if p.le is not None else (f"{p.lt})" if p.lt is not None else "inf)")
        return f"{lo}, {hi}"


def _is_union(t: Any) -> bool:
    return typing.get_origin(t) in (typing.Union, types.UnionType)


def _allows_none(t: Any) -> bool:
    return _is_union(t) and type(None) in typing.get_args(t)


def _type_name(t: Any) -> str:
    return {int: "an integer", float: "a number", str: "text", bool: "true or false"}.get(t, str(t))


class Params:
    """Subclass and declare ``name: type = Param(default, help, ...)``; subclasses add to their parents'.

    ``specs()`` lists them in declaration order (parents first).
    """

    _specs: ClassVar[dict[str, Spec]] = {}

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        specs: dict[str, Spec] = {}
        for base in reversed(cls.__mro__[1:]):
            specs.update(getattr(base, "_specs", {}) if issubclass(base, Params) else {})
        hints = typing.get_type_hints(cls)
        for name in cls.__dict__.get("__annotations__", {}):
            value = cls.__dict__.get(name, _MISSING)
            if isinstance(value, Param):
                specs[name] = Spec(name, hints[name], value)
        cls._specs = specs

    @classmethod
    def specs(cls) -> dict[str, Spec]:
        return dict(cls._specs)

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {n: s.default for n, s in cls._specs.items()}

    @classmethod
    def exposed(cls) -> dict[str, Spec]:
        return {n: s for n, s in cls._specs.items() if s.param.expose}

    @classmethod
    def check_names(cls, values: dict[str, Any], owner: str) -> None:
        unknown = sorted(set(values) - set(cls._specs))
        if unknown:
            raise LinewatchError(
                f"{owner} has no parameter {', '.join(unknown)}; its parameters are: {', '.join(cls._specs)}"
            )

    @classmethod
    def validate(cls, values: dict[str, Any]) -> dict[str, Any]:
        """Every declared parameter, coerced and checked (defaults for the missing ones)."""
        out = cls.defaults()
        out.update(values)
        return {n: cls._specs[n].validate(v) for n, v in out.items() if n in cls._specs}

    @classmethod
    def pydantic_model(cls, model_name: str, **extra_fields):
        """A pydantic model of the exposed parameters (bounds and help carried into the OpenAPI schema)."""
        import pydantic

        fields: dict[str, Any] = {}
        for n, s in cls.exposed().items():
            p = s.param
            t = s.type
            default = p.default
            finite = {"allow_inf_nan": False} if s.base_type is float else {}  # JSON bodies may hold NaN
            bounds = {"ge": p.ge, "le": p.le, "gt": p.gt, "lt": p.lt}
            if s.is_list:  # choices and bounds hold for each item
                (item,) = typing.get_args(s.base_type)
                finite = {"allow_inf_nan": False} if item is float else {}
                if p.choices is not None:
                    item = typing.Literal[tuple(p.choices)]  # type: ignore[misc]
                item = typing.Annotated[item, pydantic.Field(**bounds, **finite)]
                least = max(p.min_items, 1 if p.choices is not None else 0)
                t = typing.Annotated[list[item], pydantic.Field(min_length=least)]  # type: ignore[valid-type]
                fields[n] = (t | None if s.optional else t, pydantic.Field(default, description=p.help))
                continue
            if p.choices is not None:
                t = typing.Literal[tuple(p.choices)]  # type: ignore[misc]
                if s.optional:
                    t = t | None
            fields[n] = (t, pydantic.Field(default, description=p.help, **bounds, **finite))
        fields.update(extra_fields)
        return pydantic.create_model(model_name, __config__=pydantic.ConfigDict(extra="forbid"), **fields)
