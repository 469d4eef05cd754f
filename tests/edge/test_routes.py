"""``edge/routes.py``: compiling patterns, matching, ranking, and decoding. No sockets."""

from __future__ import annotations

import pytest

from lolo_runtime.edge.routes import PathPattern, PatternError, RouteTable


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("users", "must start with '/'"),
        ("/files/*/more", "'*' may only be the last segment"),
        ("/users/:", "is not a valid parameter name"),
        ("/users/:1st", "is not a valid parameter name"),
        ("/users/:id-x", "is not a valid parameter name"),
        ("/a/:id/b/:id", "appears twice"),
        ("/files*", "mixes text"),
        ("/a:b", "mixes text"),
    ],
)
def test_bad_patterns_are_refused_in_their_own_terms(text: str, message: str) -> None:
    with pytest.raises(PatternError, match=message):
        PathPattern.compile(text)


@pytest.mark.parametrize(
    ("pattern", "path", "params"),
    [
        ("/users/:id", "/users/42", {"id": "42"}),
        ("/users/:id", "/users/", None),  # a param is never empty
        ("/users/:id", "/users", None),
        ("/users/:id", "/users/42/x", None),
        ("/a/:x/b/:y", "/a/1/b/2", {"x": "1", "y": "2"}),
        ("/a/:x/b/:y", "/a/1/c/2", None),
        ("/files/*", "/files/a/b.txt", {"*": "a/b.txt"}),
        ("/files/*", "/files/", {"*": ""}),
        ("/files/*", "/files", {"*": ""}),
        ("/files/*", "/other/a", None),
        ("/*", "/", {"*": ""}),
        ("/*", "/x/y/", {"*": "x/y/"}),
        ("/:a/*", "/1/2/3", {"a": "1", "*": "2/3"}),
    ],
)
def test_matching(pattern: str, path: str, params: dict[str, str] | None) -> None:
    assert PathPattern.compile(pattern).match(path.split("/")[1:]) == params


def test_only_patterns_with_params_or_a_wildcard_are_not_exact() -> None:
    assert PathPattern.compile("/a/b").is_exact
    assert not PathPattern.compile("/a/:b").is_exact
    assert not PathPattern.compile("/a/*").is_exact


ROUTES = ["/users/me", "/users/:id", "/users/*", "/:kind/:id", "/*", "/users/:id/posts"]


@pytest.mark.parametrize("order", [ROUTES, ROUTES[::-1]], ids=["forward", "reverse"])
@pytest.mark.parametrize(
    ("path", "route", "params"),
    [
        ("/users/me", "/users/me", {}),  # a literal beats a param
        ("/users/42", "/users/:id", {"id": "42"}),  # a param beats the wildcard
        ("/users/42/posts", "/users/:id/posts", {"id": "42"}),
        ("/users/42/likes", "/users/*", {"*": "42/likes"}),  # literal first segment wins
        ("/teams/7", "/:kind/:id", {"kind": "teams", "id": "7"}),
        ("/teams/7/x", "/*", {"*": "teams/7/x"}),
        ("/", "/*", {"*": ""}),
    ],
)
def test_the_most_specific_route_wins_whatever_the_order_added(
    order: list[str], path: str, route: str, params: dict[str, str]
) -> None:
    table: RouteTable[str] = RouteTable()
    for text in order:
        table.add(text, text)
    assert table.find(path) == (route, params)
    assert table.find_encoded(path) == (route, params)


def test_a_path_added_twice_is_an_error() -> None:
    table: RouteTable[str] = RouteTable()
    table.add("/a/:id", "one")
    table.add("/a", "two")
    with pytest.raises(ValueError, match="two routes claim the path '/a/:id'"):
        table.add("/a/:id", "three")
    with pytest.raises(ValueError, match="two routes claim the path '/a'"):
        table.add("/a", "four")
    assert sorted(table.routes()) == ["one", "two"]


def test_nothing_matches_an_unknown_path_or_a_target_that_is_not_a_path() -> None:
    table: RouteTable[str] = RouteTable()
    table.add("/", "root")
    table.add("/a/:id", "a")
    assert table.find("/b") is None
    assert table.find_encoded("/b") is None
    assert table.find_encoded("*") is None  # OPTIONS *
    assert table.find("*") is None
    assert table.find_encoded("/") == ("root", {})


def test_segments_are_decoded_after_the_path_is_split() -> None:
    table: RouteTable[str] = RouteTable()
    for text in ("/users/:id", "/files/*", "/a/b", "/caf\u00e9"):
        table.add(text, text)
    assert table.find_encoded("/users/a%2Fb") == ("/users/:id", {"id": "a/b"})
    assert table.find_encoded("/users/caf%C3%A9") == ("/users/:id", {"id": "caf\u00e9"})
    assert table.find_encoded("/caf%c3%a9") == ("/caf\u00e9", {})
    assert table.find_encoded("/%61/%62") == ("/a/b", {})
    assert table.find_encoded("/a%2Fb") is None  # an encoded slash is not a separator
    assert table.find_encoded("/files/x%20y/z%25") == ("/files/*", {"*": "x y/z%"})
    assert table.find_encoded("/users/%FF") == ("/users/:id", {"id": "\ufffd"})
    assert table.find_encoded("/users/%") == ("/users/:id", {"id": "%"})
    # The decoded path splits differently: that is why the edge routes the encoded one.
    assert table.find("/users/a/b") is None
