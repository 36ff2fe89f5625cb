"""The one exception and warning family of neuromap, hwsim and mappings.

It lives here, in the bottom layer, so that every layer can raise it (``neuromap -> hwsim -> mappings``).
Every error and warning has a one-line message for people and, as attributes and as the ``fields`` dict,
the data a program needs (which node, field, resource, how much was needed and how much is allowed), so
that no caller parses numbers out of a message. Only the fields that apply are set: reading one that was
not given raises AttributeError, as for any missing attribute.
"""
from __future__ import annotations

from typing import Any

# The vocabulary of fields; a name outside it is a programming error (a typo would otherwise be silent).
FIELDS = ("node", "layer", "field", "value", "resource", "needed", "allowed", "target", "path", "flag", "backend")


def _checked(fields: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(fields) - set(FIELDS))
    if unknown:
        raise TypeError(f"unknown error field {unknown[0]!r} (known: {', '.join(FIELDS)})")
    return dict(fields)


class _Fields:
    """The fields of an error or warning, as attributes and as the ``fields`` dict."""

    node: str
    layer: str
    field: str
    value: Any
    resource: str
    needed: Any
    allowed: Any
    target: str
    path: str
    flag: str
    backend: str
    fields: dict[str, Any]

    def _set_fields(self, fields: dict[str, Any]) -> None:
        self.fields = _checked(fields)
        for name, value in self.fields.items():
            setattr(self, name, value)


class NeuromapError(_Fields, Exception):
    """Base class: a problem with the user's input, network or target, told in one line (``str(exc)``)."""

    def __init__(self, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        self._set_fields(fields)


class TargetError(NeuromapError, ValueError):
    """A target or GPU description is missing, unreadable, or holds a missing, mistyped or impossible field
    (``field`` names the table and field, ``value`` holds what the file says)."""


class NeuromapWarning(_Fields, UserWarning):
    """Base class of neuromap's warnings: a one-line message and the same fields as NeuromapError."""

    def __init__(self, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        self._set_fields(fields)
