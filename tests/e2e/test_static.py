"""``lolo/static`` behind a real ``lolo-run``: raw request lines, http.client, the CLI."""

from __future__ import annotations

import http.client
import socket
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import LoloProcess, lolo_run_command

SECRET = b"s3cret: outside the served folder"
INDEX = b"<!doctype html><title>home</title><p>home page</p>"
FLOW = """\
app: static-e2e
nodes:
  - id: site
    type: lolo/static
    params:
      path: /
      dir: public
  - id: assets
    type: lolo/static
    params:
      path: /assets
      dir: assets
      index: main.css
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("site")
    public = root / "public"
    (public / "docs").mkdir(parents=True)
    (public / "index.html").write_bytes(INDEX)
    (public / "docs" / "index.html").write_text("<p>docs</p>")
    (public / "app.js").write_text("console.log('hi');\n")
    (public / "style.css").write_text("body { color: red; }\n")
    (public / "data.json").write_text('{"ok": true}')
    (public / "pixel.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40)
    (public / ".hidden").write_bytes(SECRET)
    (root / "secret.txt").write_bytes(SECRET)
    (root / "outside").mkdir()
    (root / "outside" / "file").write_bytes(SECRET)
    (public / "link-out").symlink_to(root / "outside")
    (public / "secret-link").symlink_to(root / "secret.txt")
    (root / "assets").mkdir()
    (root / "assets" / "main.css").write_text("main {}")
    (root / "flow.yaml").write_text(FLOW)
    return root


@pytest.fixture(scope="module")
def server(site: Path) -> Iterator[LoloProcess]:
    with LoloProcess(site / "flow.yaml") as process:
        yield process


def raw(port: int, head: str) -> tuple[int, dict[str, str], bytes]:
    """Send ``head`` byte for byte (no client normalises the path); read to the close."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.encode("latin-1"))
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    data = b"".join(chunks)
    top, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = top.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


def request_line(method: str, target: str) -> str:
    return f"{method} {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"


def fetch(
    port: int, path: str, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[http.client.HTTPResponse, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        return response, response.read()
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/app.js", "text/javascript; charset=utf-8"),
        ("/style.css", "text/css; charset=utf-8"),
        ("/data.json", "application/json; charset=utf-8"),
        ("/pixel.png", "image/png"),
        ("/assets/main.css", "text/css; charset=utf-8"),
    ],
)
def test_files_are_served_with_their_content_type(
    server: LoloProcess, site: Path, path: str, kind: str
) -> None:
    response, body = fetch(server.port, path)
    assert response.status == 200
    assert response.getheader("content-type") == kind
    assert response.getheader("cache-control") == "no-cache"
    expected = (
        site / "assets" / "main.css" if path.startswith("/assets/") else site / "public" / path[1:]
    ).read_bytes()
    assert body == expected
    assert response.getheader("content-length") == str(len(expected))


def test_the_root_serves_index_html(server: LoloProcess) -> None:
    response, body = fetch(server.port, "/")
    assert response.status == 200
    assert body == INDEX
    assert response.getheader("content-type") == "text/html; charset=utf-8"
    assert fetch(server.port, "/docs/")[1] == b"<p>docs</p>"
    assert fetch(server.port, "/assets/")[1] == b"main {}"  # its own index: main.css


def test_a_folder_without_its_slash_is_redirected(server: LoloProcess) -> None:
    response, _ = fetch(server.port, "/docs")
    assert response.status == 301
    assert response.getheader("location") == "./docs/"
    response, _ = fetch(server.port, "/assets")
    assert response.status == 301
    assert response.getheader("location") == "./assets/"


def test_etag_then_304(server: LoloProcess) -> None:
    first, _ = fetch(server.port, "/style.css")
    etag = first.getheader("etag")
    assert etag and etag.startswith('"'), "expected a strong ETag"
    status, headers, body = raw(
        server.port,
        f"GET /style.css HTTP/1.1\r\nHost: x\r\nIf-None-Match: {etag}\r\nConnection: close\r\n\r\n",
    )
    assert (status, body) == (304, b"")
    assert headers["etag"] == etag
    assert "content-length" not in headers
    again, body = fetch(server.port, "/style.css", headers={"If-None-Match": '"other"'})
    assert again.status == 200 and body


def test_head_has_no_body_but_the_same_length(server: LoloProcess) -> None:
    _, get_headers, get_body = raw(server.port, request_line("GET", "/pixel.png"))
    status, headers, body = raw(server.port, request_line("HEAD", "/pixel.png"))
    assert status == 200
    assert body == b""
    assert headers["content-length"] == get_headers["content-length"] == str(len(get_body))
    assert headers["etag"] == get_headers["etag"]
    assert headers["content-type"] == "image/png"


@pytest.mark.parametrize(
    "target",
    [
        "/../etc/passwd",
        "/../secret.txt",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/" + "%2e%2e/" * 16 + "etc/passwd",
        "/" + "../" * 16 + "etc/passwd",
        "/%2e%2e/secret.txt",
        "/..%2fsecret.txt",
        "/%2E%2E%2Fsecret.txt",
        "/docs/..%2f..%2fsecret.txt",
        "/..%5csecret.txt",
        "//etc/passwd",
        "/%2fetc/passwd",
        "/index.html%00",
        "/link-out/file",
        "/secret-link",
        "/.hidden",
        "/%2ehidden",
        "/assets/../secret.txt",
        "/assets/%2e%2e/secret.txt",
        "/nothing-here.html",
    ],
)
def test_nothing_outside_the_folder_is_served(server: LoloProcess, target: str) -> None:
    status, _, body = raw(server.port, request_line("GET", target))
    assert status == 404, target
    assert SECRET not in body and b"root:" not in body


def test_post_is_refused_with_405_and_allow(server: LoloProcess) -> None:
    status, headers, _ = raw(
        server.port,
        "POST /index.html HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    assert status == 405
    assert headers["allow"] == "GET, HEAD"


def test_check_reports_a_missing_folder_at_its_line(tmp_path: Path) -> None:
    flow = tmp_path / "flow.yaml"
    flow.write_text(
        textwrap.dedent("""\
        app: broken-static
        nodes:
          - id: site
            type: lolo/static
            params:
              path: /
              dir: not-there
        """)
    )
    result = subprocess.run(
        [*lolo_run_command(), "check", str(flow)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2, result
    assert f"{flow}:7: " in result.stderr
    assert "not-there" in result.stderr and "does not exist" in result.stderr
    assert "Traceback" not in result.stderr
