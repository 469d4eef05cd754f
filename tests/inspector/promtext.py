"""A strict reader of Prometheus text exposition 0.0.4, for the tests (prometheus_client is
not a dependency). It refuses anything a scraper would, and more: a sample before its
family's TYPE, a family declared twice, a series given twice, a malformed name, label or
value, an unknown escape, a missing final line feed."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
TYPES = {"counter", "gauge", "summary", "histogram", "untyped"}
SUFFIXES = {"summary": ("_sum", "_count"), "histogram": ("_bucket", "_sum", "_count")}


class ExpositionError(ValueError):
    pass


@dataclass
class Exposition:
    types: dict[str, str] = field(default_factory=dict)
    helps: dict[str, str] = field(default_factory=dict)
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = field(default_factory=dict)

    def value(self, name: str, **labels: str) -> float:
        return self.samples[(name, frozenset(labels.items()))]

    def series(self, name: str) -> dict[frozenset[tuple[str, str]], float]:
        return {labels: v for (n, labels), v in self.samples.items() if n == name}


def _unescape(text: str, allowed: str) -> str:
    out, i = [], 0
    while i < len(text):
        char = text[i]
        if char == "\\":
            if i + 1 >= len(text) or text[i + 1] not in allowed:
                raise ExpositionError(f"bad escape in {text!r}")
            out.append("\n" if text[i + 1] == "n" else text[i + 1])
            i += 2
        else:
            out.append(char)
            i += 1
    return "".join(out)


def _labels(text: str) -> dict[str, str]:
    labels: dict[str, str] = {}
    i = 0
    while i < len(text):
        match = LABEL_NAME.match(text, i)
        if match is None or text[match.end() : match.end() + 2] != '="':
            raise ExpositionError(f"bad label at {text[i:]!r}")
        name, i = match.group(), match.end() + 2
        value = []
        while True:
            if i >= len(text):
                raise ExpositionError(f"unterminated label value in {text!r}")
            if text[i] == "\\":
                value.append(text[i : i + 2])
                i += 2
            elif text[i] == '"':
                i += 1
                break
            else:
                value.append(text[i])
                i += 1
        if name in labels:
            raise ExpositionError(f"label {name} twice")
        labels[name] = _unescape("".join(value), '\\"n')
        if i < len(text):
            if text[i] != ",":
                raise ExpositionError(f"expected ',' in {text!r}")
            i += 1
    return labels


def _value(text: str) -> float:
    if text in ("NaN", "+Inf", "-Inf"):
        return {"NaN": math.nan, "+Inf": math.inf, "-Inf": -math.inf}[text]
    if not re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", text):
        raise ExpositionError(f"bad value {text!r}")
    return float(text)


def _family(name: str, types: dict[str, str]) -> str | None:
    if name in types:
        return name
    for family, kind in types.items():
        if any(name == family + suffix for suffix in SUFFIXES.get(kind, ())):
            return family
    return None


def parse(text: str) -> Exposition:
    if not text.endswith("\n"):
        raise ExpositionError("the text must end with a line feed")
    result = Exposition()
    for line in text[:-1].split("\n"):
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            _, kind, rest = line.split(" ", 2)
            name, _, tail = rest.partition(" ")
            if not NAME.fullmatch(name):
                raise ExpositionError(f"bad metric name {name!r}")
            if kind == "TYPE":
                if name in result.types or tail not in TYPES:
                    raise ExpositionError(f"bad or repeated TYPE: {line!r}")
                if any(_family(n, {name: tail}) == name for n, _ in result.samples):
                    raise ExpositionError(f"TYPE of {name} after its samples")
                result.types[name] = tail
            else:
                if name in result.helps:
                    raise ExpositionError(f"HELP of {name} twice")
                result.helps[name] = _unescape(tail, "\\n")
            continue
        if not line or line.startswith("#"):
            raise ExpositionError(f"unexpected line {line!r}")
        match = re.fullmatch(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)", line)
        if match is None:
            raise ExpositionError(f"bad sample line {line!r}")
        name, label_text, value = match.groups()
        family = _family(name, result.types)
        if family is None:
            raise ExpositionError(f"sample {name} before (or without) its TYPE line")
        labels = _labels(label_text or "")
        if result.types[family] == "summary" and name == family and "quantile" not in labels:
            raise ExpositionError(f"summary sample without quantile: {line!r}")
        key = (name, frozenset(labels.items()))
        if key in result.samples:
            raise ExpositionError(f"series given twice: {line!r}")
        result.samples[key] = _value(value)
    return result
