"""The contract every engine's models follow, in scikit-learn's spirit.

- Configured in the constructor, keyword-only, from the class's :class:`~linewatch.core.params.Params`
  declaration (the one list of parameters); the constructor stores values as given and validates nothing.
- ``fit(data)`` validates the parameters (the product's error on a bad one), stores the resolved values in
  ``params_`` and its learned state in other attributes ending in ``_``, and returns ``self``.
- ``score`` / ``predict`` never mutate; using an unfitted estimator raises the product's error.
- ``config()`` is derived from the declaration: the resolved values once fitted, the given ones before.
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

from linewatch.core.params import Params
from linewatch.errors import LinewatchError


class NotFittedError(LinewatchError):
    """An estimator used before ``fit`` (or ``load``)."""


class Estimator:
    engine: ClassVar[str] = ""
    method: ClassVar[str] = ""
    Params: ClassVar[type[Params]] = Params

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        cls.__signature__ = inspect.Signature(
            [
                inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=s.default, annotation=s.type)
                for n, s in cls.Params.specs().items()
            ]
        )

    def __init__(self, **params: Any):
        self.Params.check_names(params, self.method or type(self).__name__)
        for name, value in {**self.Params.defaults(), **params}.items():
            setattr(self, name, value)

    def __repr__(self) -> str:
        changed = {n: v for n, v in self.get_params().items() if v != self.Params.specs()[n].default}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in changed.items())})"

    def get_params(self) -> dict[str, Any]:
        return {n: getattr(self, n) for n in self.Params.specs()}

    def set_params(self, **params: Any):
        self.Params.check_names(params, self.method or type(self).__name__)
        for name, value in params.items():
            setattr(self, name, value)
        return self

    def _validate_params(self) -> dict[str, Any]:
        """Checked values of every parameter; subclasses add checks across parameters in ``_check_params``."""
        values = self.Params.validate(self.get_params())
        self._check_params(values)
        return values

    def _check_params(self, values: dict[str, Any]) -> None:
        """Checks that involve several parameters; raise LinewatchError."""

    def config(self) -> dict[str, Any]:
        resolved = getattr(self, "params_", None)
        return dict(resolved) if resolved is not None else self.get_params()

    @property
    def is_fitted(self) -> bool:
        return getattr(self, "params_", None) is not None

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(
                f"this {self.method or type(self).__name__} model is not trained yet: call fit() first (or load one)"
            )
