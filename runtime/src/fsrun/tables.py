"""Implementations chosen by name from a table of "module:Class" strings, imported on use: an
unknown name is a UsageError listing the choices, a missing optional library a
MissingDependencyError naming the extra to install."""
from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any, Iterable

from fsrun.errors import MissingDependencyError, UsageError


def load(target: str) -> Any:
    """The attribute a "module:attribute" string names, its module imported now (ImportError
    and AttributeError pass: each caller says what a missing one means). The one lazy loader:
    backends, decoders, subcommands and import doors all go through it."""
    module_name, attribute = target.split(":")
    return getattr(importlib.import_module(module_name), attribute)


def import_entry(table: dict[str, str], name: str, kind: str, choices: Iterable[str],
                 extra: str) -> tuple[ModuleType, str]:
    """(the module of table[name], the attribute named there), imported now."""
    try:
        target = table[name]
    except KeyError:
        raise UsageError(f"unknown {kind} {name!r}; choose from {', '.join(choices)}") from None
    module_name, attribute = target.split(":")
    try:
        return importlib.import_module(module_name), attribute
    except ImportError as exc:
        raise MissingDependencyError(f"{name} {kind} ({exc.name or exc})", extra) from None
