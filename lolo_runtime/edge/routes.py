"""Path routing for the shared port: exact paths and Express-style patterns. Pure.

A pattern is a path whose segments may be ``:name`` (one segment, captured) and whose
last segment may be ``*`` (the rest of the path, captured as ``"*"``, possibly empty).
When several routes match, the most specific wins: segment by segment, a literal beats
``:name``, which beats ``*``.

The edge routes the path as it came on the request line (:meth:`RouteTable.find_encoded`):
it splits on ``/`` first and percent-decodes each segment after, so an encoded slash
(``%2F``) stays inside its segment (``/users/a%2Fb`` gives ``id`` ``"a/b"``, as Express
does) instead of adding one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Generic, TypeVar
from urllib.parse import unquote

R = TypeVar("R")

_PARAM = re.compile(r"^:([A-Za-z_][A-Za-z0-9_]*)$")


class PatternError(ValueError):
    """A path pattern that cannot be compiled (said in terms of the pattern)."""


@dataclass(frozen=True, slots=True)
class PathPattern:
    """A compiled route path."""

    text: str
    segments: tuple[str, ...]
    """Each segment: a literal, ``:name``, or a final ``*``."""

    @classmethod
    def compile(cls, text: str) -> PathPattern:
        if not text.startswith("/"):
            raise PatternError(f"path {text!r} must start with '/'")
        segments = tuple(text.split("/")[1:])
        names: set[str] = set()
        for index, segment in enumerate(segments):
            if segment == "*":
                if index != len(segments) - 1:
                    raise PatternError(f"path {text!r}: '*' may only be the last segment")
            elif segment.startswith(":"):
                match = _PARAM.match(segment)
                if match is None:
                    raise PatternError(
                        f"path {text!r}: {segment!r} is not a valid parameter "
                        "name (letters, digits and _ after ':')"
                    )
                if segment[1:] in names:
                    raise PatternError(f"path {text!r}: parameter {segment!r} appears twice")
                names.add(segment[1:])
            elif "*" in segment or ":" in segment:
                raise PatternError(f"path {text!r}: {segment!r} mixes text with ':' or '*'")
        return cls(text, segments)

    @property
    def is_exact(self) -> bool:
        return all(s != "*" and not s.startswith(":") for s in self.segments)

    @property
    def rank(self) -> tuple[int, ...]:
        """Sort key: literals first, then params, then the wildcard, segment by segment."""
        return tuple(2 if s == "*" else 1 if s.startswith(":") else 0 for s in self.segments)

    def match(self, parts: list[str]) -> dict[str, str] | None:
        """Route params when ``parts`` (the request path split on '/') match, else None."""
        segments = self.segments
        wildcard = bool(segments) and segments[-1] == "*"
        fixed = len(segments) - 1 if wildcard else len(segments)
        if len(parts) < fixed or (not wildcard and len(parts) != fixed):
            return None
        params: dict[str, str] = {}
        for segment, part in zip(segments[:fixed], parts, strict=False):
            if segment.startswith(":"):
                if not part:
                    return None
                params[segment[1:]] = part
            elif segment != part:
                return None
        if wildcard:
            params["*"] = "/".join(parts[fixed:])
        return params


class RouteTable(Generic[R]):
    """Finds the route for a request path."""

    def __init__(self) -> None:
        self._exact: dict[str, R] = {}
        self._patterns: list[tuple[PathPattern, R]] = []

    def add(self, path: str, route: R) -> None:
        """Register ``route`` at ``path``; a path registered twice is an error."""
        pattern = PathPattern.compile(path)
        if path in self._exact or any(p.text == path for p, _ in self._patterns):
            raise ValueError(f"two routes claim the path {path!r}")
        if pattern.is_exact:
            self._exact[path] = route
        else:
            self._patterns.append((pattern, route))
            self._patterns.sort(key=lambda item: item[0].rank)

    def remove(self, path: str) -> R | None:
        """Stop routing ``path`` (as it was added); return its route, or None if none."""
        route = self._exact.pop(path, None)
        if route is not None:
            return route
        for index, (pattern, candidate) in enumerate(self._patterns):
            if pattern.text == path:
                del self._patterns[index]
                return candidate
        return None

    def routes(self) -> list[R]:
        return [*self._exact.values(), *(route for _, route in self._patterns)]

    def find(self, path: str) -> tuple[R, dict[str, str]] | None:
        """The route for the decoded ``path`` and its params, or None."""
        return self._find(path.split("/")[1:]) if path.startswith("/") else None

    def find_encoded(self, raw_path: str) -> tuple[R, dict[str, str]] | None:
        """The route for ``raw_path`` as sent (still percent-encoded) and its decoded
        params, or None: split on ``/``, then each segment decoded."""
        if not raw_path.startswith("/"):
            return None  # '*' (OPTIONS *) names no route
        if "%" not in raw_path:  # nothing to decode: the usual case, and the fast one
            route = self._exact.get(raw_path)
            if route is not None:
                return route, {}
            return self._find(raw_path.split("/")[1:], exact_tried=True)
        return self._find([unquote(part, errors="replace") for part in raw_path.split("/")[1:]])

    def _find(self, parts: list[str], exact_tried: bool = False) -> tuple[R, dict[str, str]] | None:
        if not exact_tried and not any("/" in part for part in parts):
            # (a decoded '/' never equals a literal)
            route = self._exact.get("/" + "/".join(parts))
            if route is not None:
                return route, {}
        for pattern, candidate in self._patterns:
            params = pattern.match(parts)
            if params is not None:
                return candidate, params
        return None
