"""``lolo/http-trigger``: each HTTP request starts a chain; ``emit("response", ...)`` answers.

The event: ``method``, ``path`` (percent-decoded), ``routePath`` (the trigger's
``params.path``), ``params`` (``/users/:id`` gives ``params["id"]``, a final ``*`` gives
``params["*"]``), ``query``, ``headers`` (lower-case names), ``body``, ``rawBody`` (bytes),
``sessionId`` (an id of its own for each request), ``peer`` (``host:port``, or the
forwarded client address with ``--proxy-headers``) and ``scheme`` (``http``/``https``
as the client used it).

``body`` follows the ``Content-Type``: JSON is parsed, a urlencoded form becomes a dict
(a repeated field, a list), ``text/*`` a str, anything else bytes; no body is None. A
body that is not what its ``Content-Type`` says (JSON that does not parse, text not in
its charset) is answered 400 before any chain runs.

As on Lolo, the reply is ``ctx.emit("response", {"status", "headers", "body"})``: a dict
or list body is sent as JSON, a str as text, bytes as ``application/octet-stream``
(unless ``headers`` sets ``content-type``); ``status`` defaults to 200. A response that
cannot be sent (a header value that is not a str, a body that is not JSON...) raises
TypeError in the handler that emitted it: logged with that node's id, answered 500.
No response within ``timeout`` is answered 504; a handler that raises, 500 (no detail
leaks); :class:`~lolo_runtime.errors.Reject` its own status and reason. The first
response wins; later ones are dropped.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import secrets
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar, Literal
from urllib.parse import parse_qs

from pydantic import BaseModel, ConfigDict, Field, field_validator

from lolo_runtime.edge.responses import HeaderError, check_headers, plain
from lolo_runtime.edge.routes import PathPattern, PatternError
from lolo_runtime.edge.types import HttpRequest, HttpResponse
from lolo_runtime.errors import HandlerTimeout, Reject
from lolo_runtime.node import NodeConfig, Trigger, TriggerHost
from lolo_runtime.nodes.websocket import request_fields
from lolo_runtime.openapi import chain_operation, openapi_path
from lolo_runtime.types import Event

if TYPE_CHECKING:
    from lolo_runtime.engine import Engine

log = logging.getLogger("lolo.http")

Method = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


class HttpTriggerParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(
        pattern=r"^/[^?#\s]*$",
        description="URL path served ('/users/:id' "
        "captures params.id; a final '*' matches the rest of the path).",
    )
    methods: list[Method] | None = Field(
        None, min_length=1, description="Methods served; others get 405. Unset: all."
    )
    max_body_bytes: int = Field(
        1024 * 1024, ge=0, description="Largest request body; bigger gets 413."
    )
    timeout: float = Field(
        120,
        gt=0,
        description="Seconds the chain has to emit a "
        "response; then the client gets 504 (Lolo drops a request "
        "after two minutes).",
    )

    @field_validator("path")
    @classmethod
    def _a_valid_pattern(cls, path: str) -> str:
        return checked_route_path(path)


def checked_route_path(path: str) -> str:
    """``path`` if it is a valid route pattern; for the params models of HTTP triggers, so
    that a bad pattern is a load error that 'lolo-run check' reports on the path's line."""
    try:
        PathPattern.compile(path)
    except PatternError as exc:
        raise ValueError(str(exc)) from None
    return path


_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
"""Made once: ``json.dumps`` with options builds an encoder on every call."""


def refusal(status: int, error: str, *extra: tuple[str, str], **fields: Any) -> HttpResponse:
    """A JSON refusal made before any chain runs: ``{"error": ..., **fields}``."""
    body = _JSON.encode({"error": error, **fields}).encode() + b"\n"
    return HttpResponse(status, [("content-type", "application/json"), *extra], body)


def _ids() -> Iterator[str]:
    """Request ids: unique in this process and across restarts, cheaper than uuid4."""
    prefix = secrets.token_hex(6)
    for number in itertools.count(1):
        yield f"{prefix}-{number:x}"


_request_ids = _ids()


class HttpInvocation:
    """One request: the invocation behind its chain; the first response wins."""

    __slots__ = ("answer", "node_id", "session_id")

    def __init__(self, node_id: str, session_id: str):
        self.node_id = node_id
        self.session_id = session_id
        self.answer: asyncio.Future[HttpResponse] = asyncio.get_running_loop().create_future()

    def emit(self, name: str, payload: Any = None) -> None:
        if name != "response":
            log.debug("request %s: ignoring emitted event %r", self.session_id, name)
            return
        response = build_response(payload)  # raises in the handler that emitted
        if not self.answer.done():
            self.answer.set_result(response)
        else:
            log.debug("request %s: already answered; a later response is dropped", self.session_id)

    def fail(self, node_id: str, error: BaseException) -> None:
        if self.answer.done():
            return
        self.answer.set_result(failure_response(error))


def failure_response(error: BaseException) -> HttpResponse:
    """The answer to a chain that raised: a :class:`Reject`'s status and reason, else a
    bare 500 (the exception's text is logged, never sent)."""
    if isinstance(error, HandlerTimeout):
        return plain(504, "The app did not answer in time.\n")
    if not isinstance(error, Reject) or not 400 <= error.status <= 599:
        return plain(500)
    extra = [("www-authenticate", "Bearer")] if error.status == 401 else []
    return plain(error.status, f"{error.reason}\n" if error.reason else None, *extra)


_NO_BODY_STATUSES = frozenset({204, 304})


def build_response(payload: Any) -> HttpResponse:
    """``{"status", "headers", "body"}`` to an HTTP response; wrong shapes raise TypeError.

    The messages start with ``emit('response', ...)``: the engine logs them with the id
    of the node whose handler emitted.
    """
    if not isinstance(payload, dict):
        raise TypeError(
            "emit('response', ...) takes a dict such as "
            f"{{'status': 200, 'body': ...}}, not {type(payload).__name__}"
        )
    unknown = sorted(str(key) for key in payload if key not in ("status", "headers", "body"))
    if unknown:
        raise TypeError(
            f"emit('response', ...): unknown key(s) {', '.join(map(repr, unknown))}"
            "; a response has 'status', 'headers' and 'body'"
        )
    status = payload.get("status", 200)
    if not isinstance(status, int) or isinstance(status, bool) or not 200 <= status <= 599:
        raise TypeError(
            f"emit('response', ...): 'status' must be an int from 200 to 599, not {status!r}"
        )
    raw_headers = payload.get("headers")
    if raw_headers is None:
        raw_headers = {}
    if not isinstance(raw_headers, dict):
        raise TypeError(
            "emit('response', ...): 'headers' must be a dict of strings, "
            f"not {type(raw_headers).__name__}"
        )
    for name, value in raw_headers.items():
        if not isinstance(name, str):
            raise TypeError(
                f"emit('response', ...): header name {name!r} must be a str, "
                f"not {type(name).__name__}"
            )
        if not isinstance(value, str):
            raise TypeError(
                f"emit('response', ...): the value of header {name!r} must be "
                f"a str, not {type(value).__name__} ({value!r})"
            )
    headers: list[tuple[str, str]] = list(raw_headers.items())
    try:
        check_headers(headers)
    except HeaderError as exc:
        raise TypeError(f"emit('response', ...): {exc}") from None
    names = {name.lower() for name, _ in headers}
    body = payload.get("body")
    if body is None:
        data, kind = b"", None
    elif isinstance(body, str):
        data, kind = body.encode(), "text/plain; charset=utf-8"
    elif isinstance(body, bytes | bytearray | memoryview):
        data, kind = bytes(body), "application/octet-stream"
    else:
        try:
            data = _JSON.encode(body).encode()
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"emit('response', ...): the body cannot be sent as JSON: {exc} "
                "(send a dict, list, str or bytes)"
            ) from None
        kind = "application/json"
    if status in _NO_BODY_STATUSES:
        if data:
            raise TypeError(f"emit('response', ...): a {status} response has no body")
        kind = None
    if kind is not None and "content-type" not in names:
        headers.append(("content-type", kind))
    return HttpResponse(status, headers, data)


class BadBody(ValueError):
    """A request body that its Content-Type says is something it is not."""


def parse_body(request: HttpRequest) -> Any:
    """JSON to Python, a urlencoded form to a dict, text to str, anything else bytes.

    No body is None. A form field given more than once becomes a list, as in ``query``.
    """
    raw = request.body
    if not raw:
        return None
    kind, _, options = (request.header("content-type") or "").partition(";")
    kind = kind.strip().lower()
    if kind == "application/json" or kind.endswith("+json"):
        try:
            return json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise BadBody(f"the body is not valid JSON: {exc}") from None
    if kind == "application/x-www-form-urlencoded":
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BadBody("the form is not valid UTF-8") from None
        form = parse_qs(text, keep_blank_values=True)
        return {k: v[0] if len(v) == 1 else v for k, v in form.items()}
    if kind.startswith("text/"):
        charset = "utf-8"
        for option in options.split(";"):
            name, _, value = option.strip().partition("=")
            if name.lower() == "charset" and value:
                charset = value.strip('"')
        try:
            return raw.decode(charset)
        except (LookupError, UnicodeDecodeError):
            raise BadBody(f"the body is not valid {charset} text") from None
    return raw


class AnsweringTrigger(Trigger):
    """A trigger whose chains answer HTTP requests (:func:`answer_with_chain`)."""

    def __init__(self, config: NodeConfig):
        super().__init__(config)
        self.answering = 0
        """Requests waiting for their chain's answer now."""

    @property
    def open_sessions(self) -> int:
        """What the inspector shows as this trigger's open sessions: requests in flight."""
        return self.answering


class HttpTrigger(AnsweringTrigger):
    """Serves ``params.path`` on the app's port; one chain per request."""

    Params = HttpTriggerParams
    outputs: ClassVar[tuple[str, ...]] = ("out",)

    def __init__(self, config: NodeConfig):
        super().__init__(config)
        self.params: HttpTriggerParams = config.params  # type: ignore[assignment]
        methods = self.params.methods
        self.methods = frozenset(methods) if methods is not None else None
        self.max_body_bytes = self.params.max_body_bytes
        self._engine: Engine | None = None

    @property
    def http_path(self) -> str | None:
        return self.params.path

    async def start(self, host: TriggerHost) -> None:
        self._engine = host.engine
        host.add_http_route(self.params.path, self)

    async def serve_http(self, request: HttpRequest) -> HttpResponse:
        assert self._engine is not None, "trigger used before start()"
        try:
            body = parse_body(request)
        except BadBody as exc:
            return plain(400, f"{exc}\n")
        ev = request_fields(request)
        ev["routePath"] = self.params.path
        ev["body"] = body
        ev["rawBody"] = request.body
        return await answer_with_chain(self, self._engine, ev, request, self.params.timeout)

    def openapi_paths(self) -> dict[str, dict[str, Any]]:
        """The path, its route params and methods; what the chain answers is its own
        business, so any status is documented as possible."""
        path, parameters = openapi_path(self.params.path)
        methods = self.params.methods or ["GET", "POST", "PUT", "PATCH", "DELETE"]
        item: dict[str, Any] = {"parameters": parameters} if parameters else {}
        for method in methods:
            if method != "HEAD" or "GET" not in methods:  # else served with GET's answer
                item[method.lower()] = chain_operation(self.id, method, self.max_body_bytes)
        return {path: item}


async def answer_with_chain(
    trigger: AnsweringTrigger,
    engine: Engine,
    ev: Event,
    request: HttpRequest,
    timeout: float,
    *,
    port: str = "out",
) -> HttpResponse:
    """Fire ``ev`` out of the trigger's ``port`` and wait for the chain's first
    ``emit("response", ...)``: 504 after ``timeout`` seconds, 500 if a handler raises."""
    invocation = HttpInvocation(trigger.id, next(_request_ids))
    ev["sessionId"] = invocation.session_id
    # The chain runs as a task of its own: the answer goes out as soon as it is
    # emitted, even when the chain goes on after it.
    engine.spawn(engine.fire(trigger, port, ev, invocation))
    answer = invocation.answer
    if not answer.done():
        timer = asyncio.get_running_loop().call_later(
            timeout, _time_out, trigger.id, engine.app, timeout, invocation, request
        )
        trigger.answering += 1
        try:
            await answer
        finally:
            trigger.answering -= 1
            timer.cancel()
    return answer.result()


def _time_out(
    node_id: str, app: str, timeout: float, invocation: HttpInvocation, request: HttpRequest
) -> None:
    if invocation.answer.done():
        return
    log.warning(
        "trigger %r: no response within %gs to %s %s; answered 504",
        node_id,
        timeout,
        request.method,
        request.path,
        extra={"app": app, "node": node_id, "session": invocation.session_id},
    )
    invocation.answer.set_result(plain(504, "The app did not answer in time.\n"))
