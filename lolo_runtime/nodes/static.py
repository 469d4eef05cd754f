"""``lolo/static``: the files of a folder, served under a URL prefix (GET and HEAD).

Nothing outside the folder is ever served: a path with a ``..`` or ``.`` segment, an
empty segment, a backslash or a NUL, a dot-file or dot-folder, or one whose real path
(symlinks resolved) leaves the real folder is answered 404, exactly like a missing file.
The path arrives percent-decoded and is split on every ``/``, so ``%2e%2e`` and ``%2f``
meet the same checks as ``..`` and ``/``. A folder's URL without its final slash is
redirected (301) to the slash form, so relative links in its index work.
"""

from __future__ import annotations

import asyncio
import mimetypes
import os
import stat
from typing import ClassVar
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field

from lolo_runtime.edge.responses import plain
from lolo_runtime.edge.types import HttpRequest, HttpResponse
from lolo_runtime.errors import NodeConfigError
from lolo_runtime.node import NodeConfig, Trigger, TriggerHost

# Python's own table only: the answer must not depend on the machine's /etc/mime.types.
_TYPES = mimetypes.MimeTypes()
for _ext in (".js", ".mjs"):
    _TYPES.add_type("text/javascript", _ext)  # RFC 9239
_TYPES.add_type("application/json", ".map")
_TYPES.add_type("font/woff2", ".woff2")
_TEXT_TYPES = frozenset(
    {"application/json", "application/manifest+json", "image/svg+xml", "application/xml"}
)
_NOT_FOUND = "Nothing is served at this path.\n"


class StaticParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(
        pattern=r"^(/|(/[^/?#\s*:\\]+)+)$",
        description=(
            "URL prefix the folder is served under, such as '/' or '/assets' (no final "
            "slash); the node serves the pattern '<path>/*'."
        ),
    )
    dir: str = Field(
        min_length=1, description=("The folder to serve, relative to the flow file's folder.")
    )
    index: str = Field(
        "index.html",
        pattern=r"^[^/\\\x00.][^/\\\x00]*$",
        description=("The file served for a folder's URL (a name, not a path)."),
    )


def content_type(name: str) -> str:
    """The Content-Type for a file name: text types get ``; charset=utf-8``."""
    kind, encoding = _TYPES.guess_type(name, strict=False)
    if kind is None or encoding is not None:  # 'x.tar.gz' is gzip, not a tar
        return "application/octet-stream"
    if kind.startswith("text/") or kind in _TEXT_TYPES:
        return f"{kind}; charset=utf-8"
    return kind


def safe_segments(rest: str) -> list[str] | None:
    """The path below the prefix as segments (a last '' for a final slash), or None when
    it could name something outside the folder, or something hidden."""
    if "\\" in rest or "\0" in rest:
        return None
    segments = rest.split("/")
    if any(segment == "" or segment.startswith(".") for segment in segments[:-1]):
        return None
    return None if segments[-1].startswith(".") else segments


def _etag(info: os.stat_result) -> str:
    return f'"{info.st_size:x}-{info.st_mtime_ns:x}"'


def _matches(if_none_match: str | None, etag: str) -> bool:
    if if_none_match is None:
        return False
    for tag in if_none_match.split(","):
        tag = tag.strip()
        if tag == "*" or tag.removeprefix("W/") == etag:
            return True
    return False


class StaticNode(Trigger):
    """Serves the files under ``params.dir`` at ``params.path``; starts no chain."""

    Params = StaticParams
    inputs: ClassVar[tuple[str, ...]] = ()
    outputs: ClassVar[tuple[str, ...]] = ()
    methods: frozenset[str] = frozenset({"GET"})
    max_body_bytes: int = 0

    def __init__(self, config: NodeConfig):
        super().__init__(config)
        self.params: StaticParams = config.params  # type: ignore[assignment]
        folder = config.flow_dir / self.params.dir
        if not folder.is_dir():
            what = "is not a folder" if folder.exists() else "does not exist"
            raise NodeConfigError(f"folder {self.params.dir!r} {what} ({folder})", "params.dir")
        self.root = os.path.realpath(folder)
        prefix = self.params.path.rstrip("/")
        self._pattern = f"{prefix}/*"

    @property
    def http_path(self) -> str | None:
        return self._pattern

    async def start(self, host: TriggerHost) -> None:
        host.add_http_route(self._pattern, self)

    async def serve_http(self, request: HttpRequest) -> HttpResponse:
        segments = safe_segments(request.params.get("*", ""))
        if segments is None:
            return plain(404, _NOT_FOUND)
        return await asyncio.to_thread(self._answer, request, segments)

    def _inside(self, path: str) -> str | None:
        """``path``'s real path when it is the folder or inside it, else None."""
        real = os.path.realpath(path)
        if real == self.root or real.startswith(self.root.rstrip(os.sep) + os.sep):
            return real
        return None

    def _answer(self, request: HttpRequest, segments: list[str]) -> HttpResponse:
        """Runs in a worker thread: every file-system call of a request happens here."""
        target = self._inside(os.path.join(self.root, *segments))
        slash = request.path.endswith("/")
        if target is not None and os.path.isdir(target):
            if not slash:
                return self._to_folder(request)
            target = self._inside(os.path.join(target, self.params.index))
        elif slash:
            return plain(404, _NOT_FOUND)  # 'file.txt/'
        if target is None:
            return plain(404, _NOT_FOUND)
        try:
            # O_NONBLOCK: a FIFO must not hang the thread; O_NOFOLLOW: the checked real
            # path must not have become a symlink since.
            flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW
            with open(os.open(target, flags), "rb") as file:
                info = os.fstat(file.fileno())
                if not stat.S_ISREG(info.st_mode):
                    return plain(404, _NOT_FOUND)
                etag = _etag(info)
                headers = [("etag", etag), ("cache-control", "no-cache")]
                if _matches(request.header("if-none-match"), etag):
                    return HttpResponse(304, headers)
                body = file.read()
        except OSError:  # missing, unreadable...
            return plain(404, _NOT_FOUND)
        headers += [("content-type", content_type(target)), ("x-content-type-options", "nosniff")]
        return HttpResponse(200, headers, body)

    @staticmethod
    def _to_folder(request: HttpRequest) -> HttpResponse:
        """301 to the folder's URL with a final slash, relative to the request's own URL
        (``./name/``), so that it cannot be read as another host (``//host/``)."""
        location = f"./{quote(request.path.rpartition('/')[2])}/"
        if request.query_string:
            location += f"?{request.query_string}"
        return plain(301, f"Moved to {location}\n", ("location", location))
