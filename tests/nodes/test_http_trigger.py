"""The HTTP trigger's pure parts: request bodies in, responses out, failures, API keys."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest
from pydantic import ValidationError

from lolo_runtime.edge.types import HttpRequest, HttpResponse
from lolo_runtime.errors import Reject
from lolo_runtime.nodes.api_auth import presented_key
from lolo_runtime.nodes.http import (
    BadBody,
    HttpInvocation,
    HttpTriggerParams,
    build_response,
    failure_response,
    parse_body,
)


def header(response: HttpResponse, name: str) -> str | None:
    values = [value for key, value in response.headers if key.lower() == name]
    assert len(values) <= 1, f"{name} given twice: {response.headers}"
    return values[0] if values else None


# build_response: what a handler emits, to what the client gets


@pytest.mark.parametrize(
    ("body", "data", "kind"),
    [
        ({"a": 1, "é": [True, None]}, '{"a":1,"é":[true,null]}'.encode(), "application/json"),
        ([1, "two"], b'[1,"two"]', "application/json"),
        (3.5, b"3.5", "application/json"),
        ("héllo", "héllo".encode(), "text/plain; charset=utf-8"),
        (b"\x00\xff", b"\x00\xff", "application/octet-stream"),
        (bytearray(b"ab"), b"ab", "application/octet-stream"),
        (None, b"", None),
    ],
)
def test_a_body_is_sent_as_its_type_says(body: Any, data: bytes, kind: str | None) -> None:
    response = build_response({"body": body})
    assert (response.status, response.body, header(response, "content-type")) == (200, data, kind)


def test_status_and_headers_are_the_handlers_and_its_content_type_wins() -> None:
    response = build_response(
        {
            "status": 201,
            "body": "a,b\n",
            "headers": {"Content-Type": "text/csv", "location": "/x/1"},
        }
    )
    assert response.status == 201
    assert response.headers == [("Content-Type", "text/csv"), ("location", "/x/1")]


def test_no_content_has_no_content_type() -> None:
    assert build_response({"status": 204}).headers == []
    assert build_response({"status": 304, "body": ""}).headers == []


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ("hi", "takes a dict such as {'status': 200, 'body': ...}, not str"),
        ({"statusCode": 200}, "unknown key(s) 'statusCode'"),
        ({"status": "200"}, "'status' must be an int from 200 to 599, not '200'"),
        ({"status": True}, "not True"),
        ({"status": 100}, "not 100"),
        ({"status": 600}, "not 600"),
        ({"headers": [("a", "b")]}, "'headers' must be a dict of strings, not list"),
        ({"headers": {"x-count": 3}}, "the value of header 'x-count' must be a str, not int (3)"),
        ({"headers": {"x-raw": b"v"}}, "header 'x-raw' must be a str, not bytes"),
        ({"headers": {7: "v"}}, "header name 7 must be a str, not int"),
        ({"headers": {"x-a": "1\r\nset-cookie: evil=1"}}, "value holds a line break"),
        ({"headers": {"bad name": "v"}}, "is not a valid HTTP header name"),
        ({"headers": {"x-name": "Žofie"}}, "only latin-1 text"),
        ({"body": {1, 2}}, "the body cannot be sent as JSON"),
        ({"body": {"x": float("nan")}}, "the body cannot be sent as JSON"),
        ({"status": 204, "body": "not empty"}, "a 204 response has no body"),
    ],
)
def test_a_wrong_response_says_what_is_wrong(payload: Any, message: str) -> None:
    with pytest.raises(TypeError) as wrong:
        build_response(payload)
    assert str(wrong.value).startswith("emit('response', ...)")
    assert message in str(wrong.value)


# failure_response: what a raising chain answers


def test_a_reject_answers_its_status_and_reason() -> None:
    response = failure_response(Reject(418, "I'm a teapot"))
    assert (response.status, response.body) == (418, b"I'm a teapot\n")
    assert header(response, "www-authenticate") is None


def test_a_401_carries_a_bearer_challenge() -> None:
    response = failure_response(Reject(401, "missing lolo-api-key"))
    assert response.status == 401
    assert header(response, "www-authenticate") == "Bearer"


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError("secret-detail"),
        Reject(200, "secret-detail"),
        Reject(302, "secret-detail"),
        KeyError("secret-detail"),
    ],
)
def test_any_other_failure_is_a_bare_500(error: BaseException) -> None:
    response = failure_response(error)
    assert response.status == 500
    assert b"secret" not in response.body


def test_the_first_answer_of_an_invocation_wins() -> None:
    async def scenario() -> list[tuple[int, bytes]]:
        answers = []
        first = HttpInvocation("t", "s1")
        first.emit("typing", {"ignored": True})
        assert not first.answer.done()
        first.emit("response", {"body": "one"})
        first.emit("response", {"body": "two"})
        first.fail("n", RuntimeError("late"))
        answers.append(first.answer.result())
        second = HttpInvocation("t", "s2")
        second.fail("n", Reject(403, "no"))
        second.emit("response", {"body": "too late"})
        answers.append(second.answer.result())
        return [(a.status, a.body) for a in answers]

    assert asyncio.run(scenario()) == [(200, b"one"), (403, b"no\n")]


def test_a_wrong_response_raises_in_the_emitting_handler_and_answers_nothing() -> None:
    async def scenario() -> bool:
        invocation = HttpInvocation("t", "s")
        with pytest.raises(TypeError):
            invocation.emit("response", {"headers": {"x": 1}})
        return invocation.answer.done()

    assert asyncio.run(scenario()) is False


# parse_body: the request body, as its Content-Type says


def request(body: bytes, content_type: str | None) -> HttpRequest:
    headers = [("content-type", content_type)] if content_type is not None else []
    return HttpRequest("POST", "/", "", headers, body)


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        (b'{"a": [1, 2]}', "application/json", {"a": [1, 2]}),
        (b"[1]", "Application/JSON; charset=utf-8", [1]),
        (b'"x"', "application/vnd.api+json", "x"),
        (
            b"a=1&b=2&b=3&c=&d",
            "application/x-www-form-urlencoded",
            {"a": "1", "b": ["2", "3"], "c": "", "d": ""},
        ),
        (b"text=buy+milk%21&", "application/x-www-form-urlencoded", {"text": "buy milk!"}),
        ("name=é".encode(), "application/x-www-form-urlencoded; charset=UTF-8", {"name": "é"}),
        ("héllo".encode(), "text/plain", "héllo"),
        ("héllo".encode("latin-1"), 'text/plain; charset="ISO-8859-1"', "héllo"),
        (b"<p>", "text/html", "<p>"),
        (b"\x00\xff", "application/octet-stream", b"\x00\xff"),
        (b"\x00\xff", None, b"\x00\xff"),
        (b"--x\r\n", "multipart/form-data; boundary=x", b"--x\r\n"),
        (b"", "application/json", None),
    ],
)
def test_a_body_is_parsed_as_its_content_type_says(
    body: bytes, content_type: str | None, expected: Any
) -> None:
    parsed = parse_body(request(body, content_type))
    assert parsed == expected
    assert type(parsed) is type(expected)


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b'{"a": ', "application/json", "the body is not valid JSON"),
        (b"\xff", "application/json", "the body is not valid JSON"),
        (b"[" * 100_000, "application/json", "the body is not valid JSON"),
        (b"a=\xff", "application/x-www-form-urlencoded", "the form is not valid UTF-8"),
        (b"\xff", "text/plain", "not valid utf-8 text"),
        (b"abc", "text/plain; charset=no-such-charset", "not valid no-such-charset text"),
    ],
)
def test_a_body_that_is_not_what_it_claims_is_refused(
    body: bytes, content_type: str, message: str
) -> None:
    with pytest.raises(BadBody, match=message):
        parse_body(request(body, content_type))


def test_json_numbers_and_nesting_come_back_exactly() -> None:
    doc = {"n": 10**30, "f": 0.1, "deep": [[[{"k": None}]]]}
    assert parse_body(request(json.dumps(doc).encode(), "application/json")) == doc


# presented_key: where lolo/api-auth looks for the key


@pytest.mark.parametrize(
    ("ev", "key"),
    [
        ({"query": {"lolo-api-key": "q"}, "headers": {"lolo-api-key": "h"}}, "q"),
        ({"query": {"lolo-api-key": ["q1", "q2"]}, "headers": {}}, "q1"),
        ({"query": {}, "headers": {"lolo-api-key": "h", "authorization": "Bearer b"}}, "h"),
        ({"query": {}, "headers": {"authorization": "Bearer b"}}, "b"),
        ({"query": {}, "headers": {"authorization": "bearer   b  "}}, "b"),
        ({"query": {"lolo-api-key": ""}, "headers": {"authorization": "Bearer b"}}, "b"),
        ({"query": {}, "headers": {"authorization": "Basic dXNlcjpwYXNz"}}, None),
        ({"query": {}, "headers": {"authorization": "Bearer "}}, None),
        ({"query": {}, "headers": {}}, None),
        ({}, None),
    ],
)
def test_the_key_is_read_from_query_header_or_bearer(ev: dict[str, Any], key: str | None) -> None:
    assert presented_key(ev) == key


# params


@pytest.mark.parametrize("path", ["/", "/users/:id", "/files/*", "/a/:x/b/:y_2/*", "/*"])
def test_route_patterns_are_accepted(path: str) -> None:
    assert HttpTriggerParams.model_validate({"path": path}).path == path


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/a/*/b", "'*' may only be the last segment"),
        ("/x/:1x", "':1x' is not a valid parameter name"),
        ("/x/:id/:id", "parameter ':id' appears twice"),
        ("/x/a*", "'a*' mixes text with ':' or '*'"),
        ("users", "should match pattern"),
        ("/a?b", "should match pattern"),
    ],
)
def test_a_path_that_is_not_a_route_pattern_is_refused_at_load(path: str, message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        HttpTriggerParams.model_validate({"path": path})
