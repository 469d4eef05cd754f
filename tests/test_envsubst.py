"""``${VAR}`` substitution in flow-file values."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lolo_runtime.envsubst import BadReference, UnsetVariable, substitute

ENV = {"HOST": "example.com", "PORT": "8080", "EMPTY": "", "DOLLARS": "$${X}"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain text", "plain text"),
        ("${HOST}", "example.com"),
        ("ws://${HOST}:${PORT}/socket", "ws://example.com:8080/socket"),
        ("${HOST}${PORT}", "example.com8080"),
        ("${MISSING:-fallback}", "fallback"),
        ("${MISSING:-}", ""),
        ("${MISSING:-a b:c/d-e}", "a b:c/d-e"),
        ("${HOST:-fallback}", "example.com"),
        ("$$", "$"),
        ("costs $$5", "costs $5"),
        ("$${HOST}", "${HOST}"),
        ("$$$${HOST}", "$${HOST}"),
        ("$$${HOST}", "$example.com"),
        ("$HOST", "$HOST"),
        ("a $ sign", "a $ sign"),
        ("trailing $", "trailing $"),
        ("${EMPTY}", ""),
    ],
)
def test_text(text: str, expected: str) -> None:
    assert substitute(text, ENV) == expected


def test_an_empty_variable_takes_the_default_as_in_the_shell() -> None:
    # sh, bash and docker compose: ${VAR:-default} uses the default when VAR is unset *or*
    # empty (${VAR-default} is the unset-only form).
    assert substitute("${EMPTY:-fallback}", ENV) == "fallback"


def test_a_substituted_value_is_not_substituted_again() -> None:
    assert substitute("${DOLLARS}", ENV) == "$${X}"


def test_a_whole_value_reference_stays_text() -> None:
    assert substitute("${PORT}", ENV) == "8080"


def test_structures_are_walked_and_non_text_is_left_alone() -> None:
    value: dict[str, Any] = {
        "url": "http://${HOST}",
        "${HOST}": "keys are not substituted",
        "list": ["${PORT}", 3, None, True, 1.5, {"deep": ["${HOST}"]}],
        "n": 7,
    }
    assert substitute(value, ENV) == {
        "url": "http://example.com",
        "${HOST}": "keys are not substituted",
        "list": ["8080", 3, None, True, 1.5, {"deep": ["example.com"]}],
        "n": 7,
    }


def test_the_input_is_not_modified() -> None:
    value = {"a": ["${HOST}"]}
    substitute(value, ENV)
    assert value == {"a": ["${HOST}"]}


def test_unset_variable_names_itself_and_where_it_was() -> None:
    value = {"params": {"list": ["ok", "x${NOPE}y"]}}
    with pytest.raises(UnsetVariable) as caught:
        substitute(value, ENV, ("nodes", 2))
    assert caught.value.name == "NOPE"
    assert caught.value.where == ("nodes", 2, "params", "list", 1)


@pytest.mark.parametrize("text", ["${}", "${1ABC}", "${A-B}", "${A B}", "${A", "x ${A:default}"])
def test_malformed_references(text: str) -> None:
    with pytest.raises(BadReference) as caught:
        substitute({"k": text}, ENV)
    assert caught.value.where == ("k",)
    assert caught.value.text in text


def test_environment_is_any_mapping() -> None:
    class Env(dict[str, str]):
        pass

    assert substitute("${A}", Env(A="1")) == "1"


NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True)


@settings(max_examples=200, deadline=None)
@given(st.text().filter(lambda s: "$" not in s))
def test_text_without_dollar_is_unchanged(text: str) -> None:
    assert substitute(text, {}) == text


@settings(max_examples=200, deadline=None)
@given(NAMES, st.text(), st.text().filter(lambda s: "$" not in s))
def test_a_reference_becomes_exactly_the_value(name: str, value: str, around: str) -> None:
    assert substitute(f"{around}${{{name}}}{around}", {name: value}) == around + value + around


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_doubled_dollars_always_give_back_the_text(text: str) -> None:
    assert substitute(text.replace("$", "$$"), {}) == text


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="${}:-_AZaz09 ", max_size=30))
def test_any_text_gives_text_or_one_of_the_two_errors(text: str) -> None:
    try:
        result = substitute(text, {"A": "1", "Z": ""})
    except UnsetVariable as exc:
        assert f"${{{exc.name}" in text
    except BadReference as exc:
        assert exc.text in text
    else:
        assert isinstance(result, str)
