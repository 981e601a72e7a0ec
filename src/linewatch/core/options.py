"""Command-line options generated from parameter declarations, so the CLI never restates a default, a bound or
a help text. ``with_params(Registry)`` replaces a command's ``**params`` with one option per exposed parameter of
any of the registry's methods; the command receives only the options the user gave, under their parameter
names, after checking that they apply to the chosen method and are valid."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Annotated, Any

import typer

from linewatch.core.params import Spec
from linewatch.core.registry import Registry
from linewatch.errors import LinewatchError


def _option_type(spec: Spec) -> Any:
    if spec.is_list:
        return str  # comma separated
    base = spec.base_type
    return base if base in (int, float, str, bool) else str


def _describe(spec: Spec, methods: list[str], all_methods: list[str]) -> str:
    text = spec.help
    if spec.default is not None and not spec.is_list:
        text += f" (default: {spec.default})"
    if len(methods) < len(all_methods):
        text += f" ({', '.join(methods)} only)"
    return text


def option_name(spec: Spec) -> str:
    return "--" + (spec.param.cli_name or spec.name).replace("_", "-")


def _declaration(spec: Spec) -> str:
    """The option's name; a true-or-false parameter gets both ``--name`` and ``--no-name``."""
    name = option_name(spec)
    if _option_type(spec) is bool:
        return f"{name}/--no-{name[2:]}"
    return name


def with_params(registry: Registry, method_arg: str = "method") -> Callable:
    """Decorate a command whose signature ends in ``**params``."""
    owners: dict[str, list[str]] = {}
    specs: dict[str, Spec] = {}
    for entry in registry:
        for name, spec in entry.params.exposed().items():
            specs.setdefault(name, spec)
            owners.setdefault(name, []).append(entry.name)

    def decorate(fn: Callable) -> Callable:
        sig = inspect.signature(fn, eval_str=True)
        fixed = [p for p in sig.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
        generated = [
            inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                default=None,
                annotation=Annotated[
                    _option_type(spec) | None,
                    typer.Option(
                        _declaration(spec),
                        help=_describe(spec, owners[name], registry.names()),
                        show_default=False,
                        rich_help_panel=f"{registry.engine} parameters",
                    ),
                ],
            )
            for name, spec in specs.items()
        ]

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            given = {n: kwargs.pop(n) for n in list(kwargs) if n in specs}
            given = {n: v for n, v in given.items() if v is not None}
            method = str(kwargs.get(method_arg) or "")
            if method:
                declared = registry[method].params
                foreign = [n for n in given if n not in declared.specs()]
                if foreign:
                    opts = ", ".join(option_name(specs[n]) for n in foreign)
                    raise LinewatchError(f"{opts} does not apply to the {method} method")
                for n, v in given.items():
                    try:
                        given[n] = declared.specs()[n].validate(v)
                    except LinewatchError as e:
                        raise LinewatchError(f"{option_name(specs[n])}: {e}") from None
            return fn(*args, **kwargs, **given)

        wrapper.__signature__ = sig.replace(parameters=[*fixed, *generated])
        wrapper.__annotations__ = {
            **{p.name: p.annotation for p in fixed if p.annotation is not inspect.Parameter.empty},
            **{p.name: p.annotation for p in generated},
        }
        return wrapper

    return decorate
