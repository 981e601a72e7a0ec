"""Registries of methods by name, one per engine. An entry names its parameter declaration (light to import)
and the class that implements it (imported on first use, after checking the extra it needs), so the CLI
options, the API schemas and save/load read one list, and ``linewatch --help`` imports no torch."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from linewatch.core.extras import require
from linewatch.core.params import Params
from linewatch.errors import LinewatchError


@dataclass(frozen=True)
class Entry:
    name: str
    params: type[Params]
    target: str  # "package.module:Class"
    help: str
    extra: str

    def load(self) -> type:
        require(self.extra, f"the {self.name} method")
        module, _, attr = self.target.partition(":")
        return getattr(importlib.import_module(module), attr)


class Registry:
    def __init__(self, engine: str, what: str = "method"):
        self.engine = engine
        self.what = what
        self._entries: dict[str, Entry] = {}

    def add(self, name: str, params: type[Params], target: str, help: str, extra: str) -> Entry:
        if name in self._entries:
            raise ValueError(f"{self.engine} {self.what} {name!r} is registered twice")
        entry = self._entries[name] = Entry(name, params, target, help, extra)
        return entry

    def __getitem__(self, name: str) -> Entry:
        try:
            return self._entries[name]
        except KeyError:
            raise LinewatchError(
                f"unknown {self.engine} {self.what} {name!r}: choose one of {', '.join(self._entries)}"
            ) from None

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._entries

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._entries.values())

    def names(self) -> list[str]:
        return list(self._entries)

    def create(self, name: str, **params: Any):
        return self[name].load()(**params)
