"""``lolo/static`` without a socket: params, content types, and what may be served.

Requests are routed through the edge's real :class:`RouteTable`, so ``params["*"]`` is
what the edge would hand the node for that (already percent-decoded) path.
"""

from __future__ import annotations

import asyncio
import os
import textwrap
from pathlib import Path
from urllib.parse import unquote

import pytest
from pydantic import ValidationError

from lolo_runtime.edge.routes import RouteTable
from lolo_runtime.edge.types import HttpRequest, HttpResponse
from lolo_runtime.errors import FlowErrors, NodeConfigError
from lolo_runtime.loader import load_flow
from lolo_runtime.node import NodeConfig
from lolo_runtime.nodes.static import StaticNode, StaticParams, content_type, safe_segments
from lolo_runtime.ports import Ports

SECRET = b"top secret, outside the folder"


def make_node(flow_dir: Path, **params: str) -> StaticNode:
    config = NodeConfig(
        id="files",
        type="lolo/static",
        name="files",
        params=StaticParams.model_validate({"path": "/", "dir": "public", **params}),
        inputs=Ports(()),
        outputs=Ports(()),
        handler=None,
        flow_dir=flow_dir,
    )
    return StaticNode(config)


def get(
    node: StaticNode, raw_path: str, *headers: tuple[str, str], encoded: bool = False
) -> HttpResponse:
    """Serve ``raw_path`` (as it would appear on the request line) the way the edge does:
    routed on the decoded path, or (``encoded``) split first and decoded per segment."""
    raw, _, query = raw_path.partition("?")
    path = unquote(raw, errors="replace")
    table: RouteTable[StaticNode] = RouteTable()
    assert node.http_path is not None
    table.add(node.http_path, node)
    found = (
        table.find_encoded(raw)  # type: ignore[attr-defined, unused-ignore]
        if encoded
        else table.find(path)
    )
    if found is None:
        return HttpResponse(404)
    route, params = found
    request = HttpRequest("GET", path, query, list(headers), params=params)
    return asyncio.run(route.serve_http(request))


# The edge may route on the decoded path, or on the path as sent, decoding each segment
# after the split (so '%2F' stays inside its segment): the node must be safe either way.
ROUTINGS = [False, *([True] if hasattr(RouteTable, "find_encoded") else [])]


def header(response: HttpResponse, name: str) -> str | None:
    values = [value for key, value in response.headers if key.lower() == name]
    return values[0] if values else None


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """tmp/public (served) next to tmp/secret.txt and tmp/outside/ (not served)."""
    public = tmp_path / "public"
    (public / "sub").mkdir(parents=True)
    (public / "empty").mkdir()
    (public / ".git").mkdir()
    (public / "index.html").write_text("<h1>home</h1>")
    (public / "sub" / "index.html").write_text("<h1>sub</h1>")
    (public / "style.css").write_text("body{}")
    (public / "app.js").write_text("1")
    (public / ".hidden").write_text("hidden")
    (public / ".git" / "config").write_text("hidden too")
    (tmp_path / "secret.txt").write_bytes(SECRET)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "file").write_bytes(SECRET)
    (public / "link-out").symlink_to(tmp_path / "outside")
    (public / "secret-link.txt").symlink_to(tmp_path / "secret.txt")
    (public / "link-in.css").symlink_to(public / "style.css")
    return tmp_path


# --- params and load time ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "pattern"), [("/", "/*"), ("/assets", "/assets/*"), ("/a/b", "/a/b/*")]
)
def test_it_serves_the_pattern_below_its_prefix(site: Path, prefix: str, pattern: str) -> None:
    assert make_node(site, path=prefix).http_path == pattern


@pytest.mark.parametrize(
    "params",
    [
        {"path": "assets", "dir": "public"},
        {"path": "/assets/", "dir": "public"},
        {"path": "/a/*", "dir": "public"},
        {"path": "/:id", "dir": "public"},
        {"path": "/", "dir": ""},
        {"path": "/", "dir": "public", "index": "../secret.txt"},
        {"path": "/", "dir": "public", "index": ".hidden"},
        {"path": "/", "dir": "public", "listing": True},
    ],
)
def test_bad_params_are_refused(params: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        StaticParams.model_validate(params)


def test_every_param_is_described() -> None:
    for name, field in StaticParams.model_fields.items():
        assert field.description, name


def test_a_missing_folder_is_a_load_error_on_params_dir(tmp_path: Path) -> None:
    with pytest.raises(NodeConfigError) as caught:
        make_node(tmp_path, dir="nowhere")
    assert caught.value.field == "params.dir"
    assert "'nowhere' does not exist" in caught.value.message


def test_a_file_is_not_a_folder(site: Path) -> None:
    with pytest.raises(NodeConfigError, match="is not a folder"):
        make_node(site, dir="secret.txt")


def test_the_loader_points_at_the_dir_line(tmp_path: Path) -> None:
    flow = tmp_path / "flow.yaml"
    flow.write_text(
        textwrap.dedent("""\
        app: files
        nodes:
          - id: files
            type: lolo/static
            params:
              path: /
              dir: nowhere
        """)
    )
    with pytest.raises(FlowErrors) as caught:
        load_flow(flow, environ={})
    assert f"{flow}:7: " in str(caught.value)


def test_two_nodes_on_one_prefix_are_a_load_error(site: Path) -> None:
    flow = site / "flow.yaml"
    flow.write_text(
        textwrap.dedent("""\
        app: files
        nodes:
          - {id: one, type: lolo/static, params: {path: /x, dir: public}}
          - {id: two, type: lolo/static, params: {path: /x, dir: public}}
        """)
    )
    with pytest.raises(FlowErrors, match="already served by node 'one'"):
        load_flow(flow, environ={})


# --- content types -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("index.html", "text/html; charset=utf-8"),
        ("chat.css", "text/css; charset=utf-8"),
        ("chat.js", "text/javascript; charset=utf-8"),
        ("notes.txt", "text/plain; charset=utf-8"),
        ("data.json", "application/json; charset=utf-8"),
        ("logo.svg", "image/svg+xml; charset=utf-8"),
        ("logo.png", "image/png"),
        ("font.woff2", "font/woff2"),
        ("bundle.tar.gz", "application/octet-stream"),
        ("README", "application/octet-stream"),
    ],
)
def test_content_types(name: str, expected: str) -> None:
    assert content_type(name) == expected


# --- what may be served ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rest", "expected"),
    [
        ("", [""]),
        ("a.txt", ["a.txt"]),
        ("sub/", ["sub", ""]),
        ("sub/a.txt", ["sub", "a.txt"]),
        ("..", None),
        ("../x", None),
        ("a/../b", None),
        ("./a", None),
        ("a/./b", None),
        (".hidden", None),
        (".git/config", None),
        ("a//b", None),
        ("/etc/passwd", None),
        ("..\\x", None),
        ("a\\b", None),
        ("a\0.png", None),
    ],
)
def test_safe_segments(rest: str, expected: list[str] | None) -> None:
    assert safe_segments(rest) == expected


@pytest.mark.parametrize(
    "raw_path",
    [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/..%2fsecret.txt",
        "/%2E%2E%2Fsecret.txt",
        "/sub/../../secret.txt",
        "/..%5csecret.txt",
        "/%5c..%5csecret.txt",
        "//" + "../" * 20 + "etc/passwd",
        "/" + "%2e%2e/" * 20 + "etc/passwd",
        "/link-out/file",
        "/link-out/",
        "/secret-link.txt",
        "/.hidden",
        "/.git/config",
        "/.git/",
        "/index.html%00.png",
        "/missing.html",
        "/empty/",
        "/style.css/",
    ],
)
@pytest.mark.parametrize("encoded", ROUTINGS, ids=lambda e: "encoded" if e else "decoded")
def test_nothing_outside_the_folder_or_hidden_is_served(
    site: Path, raw_path: str, encoded: bool
) -> None:
    response = get(make_node(site), raw_path, encoded=encoded)
    assert response.status == 404, (raw_path, response)
    assert SECRET not in response.body and b"hidden" not in response.body


def test_a_file_is_served_with_its_type_etag_and_cache_control(site: Path) -> None:
    response = get(make_node(site), "/style.css")
    assert (response.status, response.body) == (200, b"body{}")
    assert header(response, "content-type") == "text/css; charset=utf-8"
    assert header(response, "cache-control") == "no-cache"
    etag = header(response, "etag")
    assert etag is not None and etag.startswith('"') and etag.endswith('"')


def test_a_symlink_inside_the_folder_is_followed(site: Path) -> None:
    response = get(make_node(site), "/link-in.css")
    assert (response.status, response.body) == (200, b"body{}")
    assert header(response, "content-type") == "text/css; charset=utf-8"


def test_a_folder_serves_its_index(site: Path) -> None:
    node = make_node(site)
    assert get(node, "/").body == b"<h1>home</h1>"
    assert get(node, "/sub/").body == b"<h1>sub</h1>"
    assert header(get(node, "/sub/"), "content-type") == "text/html; charset=utf-8"
    other = make_node(site, index="style.css")
    assert get(other, "/").body == b"body{}"


def test_a_folder_without_its_slash_is_redirected_relative_to_itself(site: Path) -> None:
    node = make_node(site)
    moved = get(node, "/sub")
    assert moved.status == 301
    assert header(moved, "location") == "./sub/"
    assert header(get(node, "/sub?x=1"), "location") == "./sub/?x=1"
    prefixed = make_node(site, path="/assets")
    assert header(get(prefixed, "/assets"), "location") == "./assets/"
    assert get(prefixed, "/assets/").body == b"<h1>home</h1>"
    assert get(prefixed, "/assets/app.js").body == b"1"


def test_if_none_match_gives_304_without_a_body(site: Path) -> None:
    node = make_node(site)
    etag = header(get(node, "/app.js"), "etag")
    assert etag is not None
    for value in (etag, f'"nope", {etag}', f"W/{etag}", "*"):
        response = get(node, "/app.js", ("if-none-match", value))
        assert (response.status, response.body) == (304, b""), value
        assert header(response, "etag") == etag
    assert get(node, "/app.js", ("if-none-match", '"nope"')).status == 200


def test_the_etag_changes_with_the_file(site: Path) -> None:
    node = make_node(site)
    before = header(get(node, "/app.js"), "etag")
    (site / "public" / "app.js").write_text("22")
    after = get(node, "/app.js", ("if-none-match", str(before)))
    assert (after.status, after.body) == (200, b"22")
    assert header(after, "etag") != before


def test_a_fifo_is_not_served_and_does_not_hang(site: Path) -> None:
    os.mkfifo(site / "public" / "pipe.txt")
    assert get(make_node(site), "/pipe.txt").status == 404
