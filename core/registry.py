"""Name -> implementation tables, with entries imported on first use.

Every pluggable part of the engine (estimators, model backends, built-in task families,
grouping methods, SDP solvers, gradient projectors) is looked up by name through one
:class:`Registry`, so they share one vocabulary (``register``, ``names``, ``get``) and one
error message for an unknown name. An entry may be the object itself or a
``"package.module:attribute"`` string; the string form keeps optional heavy dependencies
(transformers, cvxpy, torch) out of the import of the registry's module.
"""
from __future__ import annotations

import importlib
from typing import Callable, Generic, Iterator, TypeVar

from core.errors import InvalidInputError, UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """A table of named implementations of one kind.

    Parameters
    ----------
    kind : str
        What the entries are, in words ("estimator", "backend", ...); used in error messages.
    entries : dict, optional
        Initial entries: name -> object or ``"module:attribute"``.
    check : callable, optional
        ``check(obj) -> bool``; an imported or registered object that fails it is refused.
    """

    def __init__(self, kind: str, entries: dict[str, T | str] | None = None,
                 check: Callable[[object], bool] | None = None) -> None:
        self.kind = kind
        self._entries: dict[str, T | str] = dict(entries or {})
        self._check = check

    def register(self, name: str, entry: T | str) -> T | str:
        """Make ``entry`` (an object or ``"module:attribute"``) available under ``name``."""
        if not isinstance(name, str) or not name:
            raise InvalidInputError(f"{self.kind} name must be a non-empty string, got {name!r}.")
        if not isinstance(entry, str):
            self._validate(name, entry)
        self._entries[name] = entry
        return entry

    def names(self) -> tuple[str, ...]:
        """Registered names, in registration order."""
        return tuple(self._entries)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def get(self, name: str) -> T:
        """The implementation registered as ``name`` (imported now if it was registered as a string)."""
        try:
            entry = self._entries[name]
        except (KeyError, TypeError):
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}; choose one of {', '.join(self._entries)}.") from None
        if isinstance(entry, str):
            entry = self._load(name, entry)
            self._entries[name] = entry
        return entry

    def _load(self, name: str, target: str) -> T:
        module, _, attr = target.partition(":")
        try:
            obj = getattr(importlib.import_module(module), attr)
        except ModuleNotFoundError as exc:
            if exc.name is None or not (module == exc.name or module.startswith(exc.name + ".")):
                raise  # an import inside the module failed: a real error, keep its traceback
            raise UnknownNameError(f"{self.kind} {name!r} is not available in this build ({exc.name} is missing).") \
                from None
        self._validate(name, obj)
        return obj

    def _validate(self, name: str, obj: object) -> None:
        if self._check is not None and not self._check(obj):
            raise InvalidInputError(f"{self.kind} {name!r}: {obj!r} is not a valid {self.kind}.")
