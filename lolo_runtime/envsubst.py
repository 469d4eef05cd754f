"""``${VAR}`` substitution in flow-file values."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_REFERENCE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\{[^}]*\}?")


class UnsetVariable(Exception):
    def __init__(self, name: str, where: tuple[str | int, ...]):
        super().__init__(name)
        self.name = name
        self.where = where


class BadReference(Exception):
    def __init__(self, text: str, where: tuple[str | int, ...]):
        super().__init__(text)
        self.text = text
        self.where = where


def substitute(value: Any, environ: Mapping[str, str], where: tuple[str | int, ...] = ()) -> Any:
    """Replace ``${VAR}`` (and ``${VAR:-default}``) in every string inside ``value``.

    ``$$`` gives a literal ``$``. As in the shell, ``${VAR:-default}`` gives the default
    when ``VAR`` is unset or empty. An unset variable without a default raises
    :class:`UnsetVariable` carrying the path of the value that named it. A string that
    is exactly one reference keeps the variable's text (no type guessing): params models
    convert ``"8080"`` to an int where they expect one.
    """
    if isinstance(value, str):
        return _substitute_text(value, environ, where)
    if isinstance(value, list):
        return [substitute(item, environ, (*where, i)) for i, item in enumerate(value)]
    if isinstance(value, dict):
        return {key: substitute(item, environ, (*where, key)) for key, item in value.items()}
    return value


def _substitute_text(text: str, environ: Mapping[str, str], where: tuple[str | int, ...]) -> str:
    if "$" not in text:
        return text

    def replace(match: re.Match[str]) -> str:
        whole = match.group(0)
        if whole == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        if name is None:
            raise BadReference(whole, where)
        found = environ.get(name)
        if default is not None:
            return found or default  # as in the shell: set but empty takes the default too
        if found is not None:
            return found
        raise UnsetVariable(name, where)

    return _REFERENCE.sub(replace, text)
