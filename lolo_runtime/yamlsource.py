"""Strict YAML reading that remembers the line of every value.

Flow files are small and written by hand, so this reader prefers a clear error to
YAML's conveniences: duplicate mapping keys are rejected (YAML's silent last-wins hides
mistakes), Python object tags are rejected, and alias expansion is capped so an alias
bomb fails fast instead of eating memory.
"""

from __future__ import annotations

import bisect
from pathlib import Path
from typing import Any, TypeAlias

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from lolo_runtime.errors import FlowError

MAX_FLOW_BYTES = 1024 * 1024
MAX_VALUES = 20_000
MAX_DEPTH = 64

LocPath: TypeAlias = tuple[str | int, ...]
LineMap: TypeAlias = dict[LocPath, int]

_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MERGE_TAG = "tag:yaml.org,2002:merge"


def read_yaml_file(path: Path) -> tuple[Any, LineMap]:
    """Read ``path`` and return its document plus a map from value path to line number."""
    too_big = f"the limit is {MAX_FLOW_BYTES} bytes"
    try:
        size = path.stat().st_size
        if size > MAX_FLOW_BYTES:
            raise FlowError(f"flow file is {size} bytes; {too_big}", path, 1)
        # Read one byte past the limit, never more: the "file" may be a pipe, or endless.
        with path.open("rb") as stream:
            data = stream.read(MAX_FLOW_BYTES + 1)
    except OSError as exc:
        raise FlowError(f"cannot read flow file: {exc.strerror}", path, 1) from None
    except ValueError:  # a NUL in the path: no file can have that name
        raise FlowError("cannot read flow file: the path holds a NUL byte", path, 1) from None
    if len(data) > MAX_FLOW_BYTES:
        raise FlowError(f"flow file is over {MAX_FLOW_BYTES} bytes; {too_big}", path, 1)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise FlowError(f"cannot read flow file: {exc}", path, line) from None
    return parse_yaml(text, path)


class _TooManyNodes(Exception):
    def __init__(self, index: int):
        self.index = index


class _CountingLoader(yaml.SafeLoader):
    """Stops composing once the document holds more nodes than any flow needs."""

    composed = 0

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        self.composed += 1
        if self.composed > MAX_VALUES:
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise _TooManyNodes(event.start_mark.index)
        return super().compose_node(parent, index)


def parse_yaml(text: str, path: Path) -> tuple[Any, LineMap]:
    """Parse one YAML document held in ``text``; errors name ``path``."""
    if len(text) > MAX_FLOW_BYTES:
        raise FlowError(f"flow file is over the limit of {MAX_FLOW_BYTES} bytes", path, 1)
    try:
        # The constructor already scans for characters YAML forbids.
        # The pure-Python parser on purpose: libyaml's is faster, but it crashes the
        # process on deeply nested input, and a flow file may be hostile.
        loader = _CountingLoader(text)
    except yaml.reader.ReaderError as exc:
        raise _reader_error(exc, text, path) from None
    try:
        root = loader.get_single_node()
        if root is None:
            raise FlowError("flow file is empty", path, 1)
        return _Builder(loader, path, text).build(root)
    except yaml.reader.ReaderError as exc:
        raise _reader_error(exc, text, path) from None
    except _TooManyNodes as exc:
        raise FlowError(
            f"document has more than {MAX_VALUES} values", path, line_of(text, exc.index)
        ) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = line_of(text, mark.index) if mark is not None else 1
        parts = [part for part in (exc.context, exc.problem) if part]
        problem = ", but ".join(parts) if len(parts) == 2 else (parts or ["invalid YAML"])[0]
        raise FlowError(f"YAML syntax error: {problem}", path, line) from None
    except yaml.YAMLError as exc:
        raise FlowError(f"YAML error: {exc}", path, 1) from None
    except RecursionError:
        raise FlowError("YAML document is nested too deeply", path, 1) from None
    finally:
        loader.dispose()


class LineIndex:
    """1-based line of a character offset, counting only ``\n`` as a line break.

    PyYAML (YAML 1.1) also breaks lines at U+0085, U+2028 and U+2029; editors do not, so
    its own line numbers can point past the line a reader sees. Built once per document:
    each lookup is a binary search, so a file of many small values loads in linear time.
    """

    def __init__(self, text: str):
        self._starts = [0]
        find, at = text.find, text.find("\n")
        while at != -1:
            self._starts.append(at + 1)
            at = find("\n", at + 1)
        if text.endswith("\n"):
            self._starts.pop()  # no line begins after the final newline

    def line(self, index: int) -> int:
        return max(1, bisect.bisect_right(self._starts, index))


def line_at(lines: LineMap, loc: LocPath) -> int:
    """The line of ``loc`` in a document read with its ``lines``: of its nearest parent
    that has one when it has none itself (a key that is missing, say), else line 1."""
    while loc:
        if loc in lines:
            return lines[loc]
        loc = loc[:-1]
    return lines.get((), 1)


def line_of(text: str, index: int) -> int:
    """One-off :meth:`LineIndex.line`, for errors raised before a document is built."""
    return LineIndex(text).line(index)


def _reader_error(exc: yaml.reader.ReaderError, text: str, path: Path) -> FlowError:
    character = exc.character
    shown = repr(character) if isinstance(character, str) else f"byte {character!r}"
    return FlowError(f"character {shown} is not allowed in YAML", path, line_of(text, exc.position))


class _Builder:
    """Turns a composed YAML node tree into plain Python values, recording lines."""

    def __init__(self, loader: yaml.SafeLoader, path: Path, text: str):
        self.loader = loader
        self.path = path
        self.lines_of = LineIndex(text)
        self.lines: LineMap = {}
        self.values = 0

    def build(self, root: Node) -> tuple[Any, LineMap]:
        return self._value(root, (), 0), self.lines

    def _line(self, node: Node) -> int:
        return self.lines_of.line(node.start_mark.index)

    def _error(self, node: Node, message: str) -> FlowError:
        return FlowError(message, self.path, self._line(node))

    def _value(self, node: Node, loc: LocPath, depth: int) -> Any:
        self.values += 1
        if self.values > MAX_VALUES:
            raise self._error(
                node, f"document expands to more than {MAX_VALUES} values (alias bomb?)"
            )
        if depth > MAX_DEPTH:
            raise self._error(node, f"document is nested deeper than {MAX_DEPTH} levels")
        self.lines.setdefault(loc, self._line(node))
        if isinstance(node, ScalarNode):
            return self._scalar(node)
        if isinstance(node, SequenceNode):
            if node.tag != _SEQ_TAG:
                raise self._error(node, f"unsupported YAML tag {node.tag!r}")
            return [self._value(item, (*loc, i), depth + 1) for i, item in enumerate(node.value)]
        if isinstance(node, MappingNode):
            return self._mapping(node, loc, depth)
        raise self._error(node, "unsupported YAML node")

    def _scalar(self, node: ScalarNode) -> Any:
        try:
            return self.loader.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as exc:
            problem = exc.problem or "cannot read value"
            raise self._error(node, f"unsupported YAML value: {problem}") from None

    def _mapping(self, node: MappingNode, loc: LocPath, depth: int) -> dict[Any, Any]:
        if node.tag != _MAP_TAG:
            raise self._error(node, f"unsupported YAML tag {node.tag!r}")
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self._key(key_node)
            if key in seen:
                raise self._error(
                    key_node, f"duplicate key {key!r} (first given on line {seen[key]})"
                )
            seen[key] = self._line(key_node)
        # Resolves ``<<: *anchor`` merge keys in place; explicit keys then win over merged ones.
        self.loader.flatten_mapping(node)
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = self._key(key_node)
            # A value's line is its key's line: that is where a reader looks. Merged pairs
            # come first, so an explicit key that overrides one also takes its line.
            self.lines[(*loc, key)] = self._line(key_node)
            result[key] = self._value(value_node, (*loc, key), depth + 1)
        return result

    def _key(self, node: Node) -> Any:
        if not isinstance(node, ScalarNode):
            raise self._error(node, "mapping keys must be plain values")
        key = self._scalar(node)
        if not isinstance(key, str | int | float | bool) and key is not None:
            raise self._error(node, f"unsupported mapping key {key!r}")
        return key
