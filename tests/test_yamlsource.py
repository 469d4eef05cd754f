"""The strict YAML reader: values, their lines, and what it refuses."""

from __future__ import annotations

import contextlib
import math
import re
import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from lolo_runtime.errors import FlowError
from lolo_runtime.yamlsource import (
    MAX_DEPTH,
    MAX_FLOW_BYTES,
    MAX_VALUES,
    parse_yaml,
    read_yaml_file,
)

# When libcst is installed, hypothesis imports it to suggest a patch for a failing example,
# and libcst's import warns (mypy_extensions.TypedDict); under filterwarnings=error that
# crashes the whole pytest session instead of reporting the failure. Import it now, quietly.
with contextlib.suppress(ImportError), warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import libcst  # noqa: F401

PATH = Path("flows/app.yaml")
LOCATED = re.compile(r"^flows/app\.yaml:(\d+): (\S.*)$")


def error_of(text: str) -> FlowError:
    with pytest.raises(FlowError) as caught:
        parse_yaml(text, PATH)
    return caught.value


def assert_located(error: FlowError, text: str) -> int:
    """``error`` reads ``path:line: message`` on one line, with a line inside ``text``."""
    match = LOCATED.match(str(error))
    assert match, f"not 'path:line: message': {error!s}"
    line = int(match.group(1))
    assert error.line == line
    assert 1 <= line <= text.count("\n") + 1
    return line


# --- values and lines ------------------------------------------------------------------

FLOW = """\
app: chat
nodes:
  - id: ws
    type: lolo/websocket-trigger
    params:
      path: /socket

  - id: chat
    inputs: [req, msg]
    params: {greeting: hi, n: 3}
edges:
  - ws.req -> chat.req
"""


def test_values_are_plain_python() -> None:
    data, _ = parse_yaml(FLOW, PATH)
    assert data == {
        "app": "chat",
        "nodes": [
            {"id": "ws", "type": "lolo/websocket-trigger", "params": {"path": "/socket"}},
            {"id": "chat", "inputs": ["req", "msg"], "params": {"greeting": "hi", "n": 3}},
        ],
        "edges": ["ws.req -> chat.req"],
    }


def test_every_value_has_the_line_of_its_key_or_item() -> None:
    _, lines = parse_yaml(FLOW, PATH)
    assert lines[()] == 1
    assert lines[("app",)] == 1
    assert lines[("nodes",)] == 2
    assert lines[("nodes", 0)] == 3
    assert lines[("nodes", 0, "id")] == 3
    assert lines[("nodes", 0, "params")] == 5  # the key's line, not the block below it
    assert lines[("nodes", 0, "params", "path")] == 6
    assert lines[("nodes", 1)] == 8
    assert lines[("nodes", 1, "inputs", 1)] == 9
    assert lines[("nodes", 1, "params", "n")] == 10
    assert lines[("edges", 0)] == 12


def test_windows_line_endings_and_a_bom_do_not_move_lines() -> None:
    data, lines = parse_yaml("\ufeff" + FLOW.replace("\n", "\r\n"), PATH)
    assert data == parse_yaml(FLOW, PATH)[0]
    assert lines == parse_yaml(FLOW, PATH)[1]


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x85"])
def test_unicode_line_separators_do_not_move_lines(separator: str) -> None:
    # YAML 1.1 counts U+2028, U+2029 and U+0085 as line breaks; editors, grep -n and the
    # user count only "\n". A reported line must be one the user can find.
    text = f'a: "x{separator}y"\nb: 1\nc: [\n'
    data, lines = parse_yaml(f'a: "x{separator}y"\nb: 1\n', PATH)
    assert data["a"].startswith("x")
    assert lines[("b",)] == 2
    assert error_of(text).line == 3


def test_yaml_1_1_scalars_are_what_pyyaml_makes_them() -> None:
    data, _ = parse_yaml("a: yes\nb: off\nc: '5'\nd: 0x10\ne: ~\nf: 1.5\n", PATH)
    assert data == {"a": True, "b": False, "c": "5", "d": 16, "e": None, "f": 1.5}


def test_merge_keys_work_and_explicit_keys_win() -> None:
    text = "base: &b {path: /a, n: 1}\nother:\n  <<: *b\n  path: /b\n"
    data, lines = parse_yaml(text, PATH)
    assert data["other"] == {"path": "/b", "n": 1}
    assert lines[("other", "path")] == 4


def test_a_few_aliases_are_fine() -> None:
    data, _ = parse_yaml("a: &x [1, 2]\nb: *x\nc: *x\n", PATH)
    assert data == {"a": [1, 2], "b": [1, 2], "c": [1, 2]}


# --- what it refuses -------------------------------------------------------------------


def test_syntax_error_points_at_its_line() -> None:
    text = "app: chat\nnodes:\n  - id: ws\n   type: x\n"
    error = error_of(text)
    assert assert_located(error, text) == 4
    assert error.message.startswith("YAML syntax error: ")


def test_tab_indentation_is_a_syntax_error_on_its_line() -> None:
    error = error_of("a:\n\tb: 1\n")
    assert error.line == 2
    assert "YAML syntax error" in error.message


@pytest.mark.parametrize(
    "text",
    [
        "a: 1\nb: 2\na: 3\n",
        "a: 1\nb: {x: 1, x: 2}\n",
        "a: 1\nb:\n  - {k: 1}\n  - k: 1\n    k: 2\n",
    ],
)
def test_duplicate_keys_are_refused(text: str) -> None:
    error = error_of(text)
    assert_located(error, text)
    assert "duplicate key" in error.message
    assert "first given on line" in error.message


def test_duplicate_key_names_both_lines() -> None:
    error = error_of("app: a\nnodes: []\napp: b\n")
    assert (error.line, error.message) == (3, "duplicate key 'app' (first given on line 1)")


def test_keys_python_would_merge_are_duplicates() -> None:
    # 1 and true are different YAML keys but one Python key: refuse rather than overwrite.
    assert "duplicate key" in error_of("1: a\ntrue: b\n").message


@pytest.mark.parametrize(
    "value",
    [
        "!!python/object/apply:os.system ['echo pwned']",
        "!!python/object/apply:os.system\n    args: ['echo pwned']",
        "!!python/name:os.system",
        "!!python/object:collections.OrderedDict {}",
        "!!set {a: null}",
        "!!omap [a: 1]",
        "!custom thing",
        "!custom [1]",
        "!custom {a: 1}",
    ],
)
def test_tags_outside_plain_yaml_are_refused(value: str) -> None:
    text = f"app: chat\nthing: {value}\n"
    error = error_of(text)
    assert error.line == 2
    assert "unsupported YAML" in error.message


def test_standard_scalar_tags_are_fine() -> None:
    data, _ = parse_yaml("a: !!str 5\nb: !!int '7'\n", PATH)
    assert data == {"a": "5", "b": 7}


def test_alias_bomb_fails_fast() -> None:
    rows = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        rows.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]")
    error = error_of("\n".join(rows) + "\n")
    assert f"more than {MAX_VALUES} values" in error.message


def test_self_referencing_alias_is_refused() -> None:
    error = error_of("a: &a [1, *a]\n")
    assert "nested" in error.message


def test_nesting_is_capped() -> None:
    ok = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    parse_yaml(ok, PATH)
    assert "nested deeper" in error_of("[" * (MAX_DEPTH + 2) + "]" * (MAX_DEPTH + 2)).message


def test_absurd_nesting_is_an_error_not_a_crash() -> None:
    text = "[" * 20_000 + "]" * 20_000
    assert "nested" in error_of(text).message


def test_too_many_values_without_aliases() -> None:
    text = "".join(f"- {i}\n" for i in range(MAX_VALUES + 1))
    error = error_of(text)
    assert_located(error, text)
    assert f"more than {MAX_VALUES} values" in error.message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("? [a, b]\n: 1\n", "mapping keys must be plain values"),
        ("? {a: 1}\n: 1\n", "mapping keys must be plain values"),
        ("2020-01-01: x\n", "unsupported mapping key"),
    ],
)
def test_odd_keys_are_refused(text: str, message: str) -> None:
    assert message in error_of(text).message


def test_undefined_alias() -> None:
    error = error_of("app: chat\nnodes: *nodes\n")
    assert error.line == 2
    assert "undefined alias" in error.message


def test_two_documents_are_refused() -> None:
    error = error_of("app: a\n---\napp: b\n")
    assert error.line == 2
    assert "another document" in error.message


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "  \n# two\n# comments\n"])
def test_empty_document(text: str) -> None:
    error = error_of(text)
    assert (error.line, error.message) == (1, "flow file is empty")


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("app: chat\x07\n", 1),
        ("app: chat\nnodes:\n  - id: \x00\n", 3),
        ("app: chat\n\npath: /socket\x1b[0m\n", 3),
    ],
)
def test_control_characters_are_an_error_on_their_line(text: str, line: int) -> None:
    error = error_of(text)
    assert assert_located(error, text) == line
    assert "not allowed" in error.message


def test_text_over_the_size_limit() -> None:
    text = "a: 1\n" + "#" * MAX_FLOW_BYTES
    error = error_of(text)
    assert error.line == 1
    assert str(MAX_FLOW_BYTES) in error.message


def test_file_over_the_size_limit_is_not_read(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(b"a: 1\n" + b"#" * MAX_FLOW_BYTES)
    with pytest.raises(FlowError) as caught:
        read_yaml_file(path)
    assert str(caught.value) == (
        f"{path}:1: flow file is {MAX_FLOW_BYTES + 5} bytes; the limit is {MAX_FLOW_BYTES} bytes"
    )


def test_file_at_the_size_limit_is_read(tmp_path: Path) -> None:
    path = tmp_path / "limit.yaml"
    body = b"a: 1\n"
    path.write_bytes(body + b"#" * (MAX_FLOW_BYTES - len(body)))
    assert read_yaml_file(path)[0] == {"a": 1}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read flow file: No such file or directory"),
        (b"app: caf\xe9\n", "cannot read flow file: 'utf-8' codec can't decode"),
    ],
)
def test_unreadable_files(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "flow.yaml"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(FlowError) as caught:
        read_yaml_file(path)
    assert str(caught.value).startswith(f"{path}:1: {message}")


# --- properties ------------------------------------------------------------------------


def check_outcome(text: str) -> None:
    """``parse_yaml`` gives a value, or one located FlowError; nothing else escapes."""
    try:
        data, lines = parse_yaml(text, PATH)
    except FlowError as error:
        assert "\n" not in str(error), f"a message over several lines: {error!s}"
        assert_located(error, text)
    else:
        assert lines[()] >= 1
        assert all(1 <= line <= text.count("\n") + 1 for line in lines.values())
        del data


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_any_text_gives_a_value_or_a_located_error(text: str) -> None:
    check_outcome(text)


YAML_BITS = st.sampled_from(
    [
        "a",
        "b",
        "app",
        "nodes",
        "1",
        "-1.5",
        "~",
        "yes",
        "'q'",
        '"d"',
        ": ",
        ":",
        "- ",
        "-",
        "? ",
        "[",
        "]",
        "{",
        "}",
        ", ",
        "&x ",
        "*x",
        "&y ",
        "*y",
        "<<: ",
        "!!str ",
        "!!python/",
        "!t ",
        "#",
        "|",
        ">",
        "---",
        "...",
        "%YAML 1.1",
        "\n",
        "\n  ",
        "\n    ",
        "\t",
        " ",
        "\\",
        "é",
        "\u2028",
        "\x85",
    ]
)


@settings(max_examples=200, deadline=None)
@given(st.lists(YAML_BITS, max_size=40).map("".join))
def test_yaml_shaped_text_gives_a_value_or_a_located_error(text: str) -> None:
    check_outcome(text)


SAFE_TEXT = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp")), max_size=12
)
SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | SAFE_TEXT
KEYS = SAFE_TEXT | st.integers(min_value=-1000, max_value=1000)


def documents(leaf: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(
        leaf,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
        max_leaves=25,
    )


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isinf(a) and a == b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


@settings(max_examples=200, deadline=None)
@given(documents(SCALARS), st.sampled_from(["block", "flow"]))
def test_what_pyyaml_writes_reads_back_the_same(value: Any, style: str) -> None:
    text = yaml.safe_dump(
        value, sort_keys=False, allow_unicode=True, default_flow_style=style == "flow"
    )
    data, lines = parse_yaml(text, PATH)
    assert same(data, value), (text, data)
    assert same(data, yaml.safe_load(text))
    assert all(1 <= line <= text.count("\n") + 1 for line in lines.values())
