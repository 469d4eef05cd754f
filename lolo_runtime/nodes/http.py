"""``lolo/http-trigger``: each HTTP request starts a chain; ``emit("response", ...)`` answers.

As on Lolo, the reply is ``ctx.emit("response", {"status", "headers", "body"})``: a dict
or list body is sent as JSON, a str as text, bytes as ``application/octet-stream``.
No response within ``timeout`` is answered 504; a handler that raises, 500 (no detail
leaks); :class:`~lolo_runtime.errors.Reject` its own status. A JSON body that does not
parse is answered 400 before any chain runs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from typing import TYPE_CHECKING, Any, ClassVar, Literal
from urllib.parse import parse_qs

from pydantic import BaseModel, ConfigDict, Field

from lolo_runtime.edge.responses import HeaderError, check_headers, plain
from lolo_runtime.edge.types import HttpRequest, HttpResponse
from lolo_runtime.errors import Reject
from lolo_runtime.node import NodeConfig, Trigger, TriggerHost
from lolo_runtime.nodes.websocket import request_fields

if TYPE_CHECKING:
    from lolo_runtime.engine import Engine

log = logging.getLogger("lolo.http")

Method = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


class HttpTriggerParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(pattern=r"^/[^?#\s]*$", description="URL path served ('/users/:id' "
                      "captures params.id; a final '*' matches the rest of the path).")
    methods: list[Method] | None = Field(
        None, min_length=1, description="Methods served; others get 405. Unset: all.")
    max_body_bytes: int = Field(1024 * 1024, ge=0,
                                description="Largest request body; bigger gets 413.")
    timeout: float = Field(120, gt=0, description="Seconds the chain has to emit a "
                           "response; then the client gets 504 (Lolo drops a request "
                           "after two minutes).")


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

    def fail(self, node_id: str, error: BaseException) -> None:
        if self.answer.done():
            return
        if isinstance(error, Reject):
            self.answer.set_result(plain(error.status, error.reason or None))
        else:
            self.answer.set_result(plain(500))


def build_response(payload: Any) -> HttpResponse:
    """``{"status", "headers", "body"}`` to an HTTP response; wrong shapes raise TypeError."""
    if not isinstance(payload, dict):
        raise TypeError("emit('response', ...) takes a dict such as "
                        f"{{'status': 200, 'body': ...}}, not {type(payload).__name__}")
    status = payload.get("status", 200)
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        raise TypeError(f"response status must be an int from 100 to 599, not {status!r}")
    raw_headers = payload.get("headers") or {}
    if not isinstance(raw_headers, dict):
        raise TypeError("response headers must be a dict of strings")
    headers = list(raw_headers.items())
    try:
        check_headers(headers)
    except HeaderError as exc:
        raise TypeError(f"response {exc}") from None
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
            data = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        except (TypeError, ValueError) as exc:
            raise TypeError(f"response body cannot be sent as JSON: {exc}") from None
        kind = "application/json"
    if kind is not None and "content-type" not in names:
        headers.append(("content-type", kind))
    return HttpResponse(status, headers, data)


class BadBody(ValueError):
    """A request body that its Content-Type says is something it is not."""


def parse_body(request: HttpRequest) -> Any:
    """JSON to Python, a urlencoded form to a dict, text to str, anything else bytes."""
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
            form = parse_qs(raw.decode("ascii"), keep_blank_values=True, strict_parsing=True)
        except (UnicodeDecodeError, ValueError):
            raise BadBody("the body is not a valid urlencoded form") from None
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


class HttpTrigger(Trigger):
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
        invocation = HttpInvocation(self.id, str(uuid.uuid4()))
        ev = request_fields(request)
        ev["sessionId"] = invocation.session_id
        ev["routePath"] = self.params.path
        ev["body"] = body
        ev["rawBody"] = request.body
        chain = self._engine.fire(self, "out", ev, invocation)
        self._engine.spawn(chain)
        try:
            return await asyncio.wait_for(asyncio.shield(invocation.answer),
                                          self.params.timeout)
        except TimeoutError:
            log.warning("%s: no response within %gs to %s %s; answered 504", self.id,
                        self.params.timeout, request.method, request.path,
                        extra={"node": self.id, "session": invocation.session_id})
            return plain(504, "The app did not answer in time.\n")
