"""Deployment options of ``lolo-run``: TLS, proxy headers, the event loop, and --help."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import re
import selectors
import shutil
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedOK

from tests.e2e.test_http_trigger import Reply, fetch
from tests.support import ROOT, LoloProcess, lolo_run_command, unavailable

HTTP_FLOW = ROOT / "tests" / "e2e" / "flows" / "http-trigger.yaml"
CHAT = ROOT / "flows" / "chat.yaml"


@pytest.fixture(scope="module")
def openssl() -> str:
    """The openssl CLI."""
    program = shutil.which("openssl")
    if program is None:
        unavailable("needs the openssl command (Debian package: openssl)")
    return program


def make_certificate(openssl: str, where: Path, name: str = "localhost") -> tuple[Path, Path]:
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            f"/CN={name}",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


@pytest.fixture(scope="module")
def certificate(openssl: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost, and its key."""
    return make_certificate(openssl, tmp_path_factory.mktemp("tls"))


def trusting(cert: Path) -> ssl.SSLContext:
    """A client context that trusts ``cert`` (and nothing else)."""
    return ssl.create_default_context(cafile=str(cert))


def fetch_tls(
    port: int,
    context: ssl.SSLContext,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
) -> Reply:
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    try:
        return fetch(conn, method, path, headers=headers)
    finally:
        conn.close()


def run_briefly(
    *args: str, command: list[str] | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``lolo-run ARGS`` that must exit by itself (a refused command line)."""
    return subprocess.run(
        [*(command or lolo_run_command()), *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )


async def chat(url: str, context: ssl.SSLContext | None = None) -> tuple[str, str]:
    """Two clients: both are greeted, and what one says reaches the other."""
    async with connect(url, ssl=context) as a, connect(url, ssl=context) as b:
        greeting = json.loads(await asyncio.wait_for(a.recv(), 5))
        assert greeting["connected"] is True
        assert json.loads(await asyncio.wait_for(b.recv(), 5))["connected"] is True
        await a.send("hello there")
        heard = await asyncio.wait_for(b.recv(), 5)
        return str(greeting["yourConnectionId"]), str(heard)


# TLS


def test_https_serves_http_triggers_with_the_given_certificate(
    openssl: str, certificate: tuple[Path, Path], tmp_path: Path
) -> None:
    cert, key = certificate
    with LoloProcess(
        HTTP_FLOW,
        "--ssl-certfile",
        str(cert),
        "--ssl-keyfile",
        str(key),
        state=tmp_path / "state.sqlite3",
    ) as server:
        reply = fetch_tls(server.port, trusting(cert), "GET", "/users/7/items/x")
        assert reply.status == 200
        ev = reply.json()
        assert (ev["params"], ev["scheme"]) == ({"id": "7", "item": "x"}, "https")
        # It is this certificate: a client that trusts another one refuses it...
        other = make_certificate(openssl, tmp_path)[0]
        with pytest.raises(ssl.SSLCertVerificationError):
            fetch_tls(server.port, trusting(other), "GET", "/echo")
        # ...and plain HTTP is not spoken on the port.
        with pytest.raises((http.client.HTTPException, ConnectionError)):
            fetch(server.port, "GET", "/echo")
        assert server.stop() == 0
        log = server.stderr()
    assert f"listening on https://127.0.0.1:{server.port}" in log
    assert "Traceback" not in log


def test_wss_serves_the_chat(certificate: tuple[Path, Path], tmp_path: Path) -> None:
    cert, key = certificate
    with LoloProcess(
        CHAT,
        "--ssl-certfile",
        str(cert),
        "--ssl-keyfile",
        str(key),
        state=tmp_path / "state.sqlite3",
    ) as server:
        sender, heard = asyncio.run(chat(f"wss://localhost:{server.port}/socket", trusting(cert)))
        assert heard == f"{sender} says: hello there"
        assert server.stop() == 0
        assert "Traceback" not in server.stderr()


def test_wss_clients_are_closed_with_1001_at_shutdown(
    certificate: tuple[Path, Path], tmp_path: Path
) -> None:
    cert, key = certificate
    with LoloProcess(
        CHAT,
        "--ssl-certfile",
        str(cert),
        "--ssl-keyfile",
        str(key),
        state=tmp_path / "state.sqlite3",
    ) as server:

        async def scenario() -> int | None:
            async with connect(f"wss://127.0.0.1:{server.port}/socket", ssl=trusting(cert)) as ws:
                await asyncio.wait_for(ws.recv(), 5)
                server.send_signal(signal.SIGTERM)
                with pytest.raises(ConnectionClosedOK):
                    await asyncio.wait_for(ws.recv(), 5)
                return ws.close_code

        started = time.monotonic()
        assert asyncio.run(scenario()) == 1001
        assert server.wait() == 0
        assert time.monotonic() - started < 5
        assert "still open" not in server.stderr()


def test_a_certificate_file_holding_the_key_too_is_enough(
    certificate: tuple[Path, Path], tmp_path: Path
) -> None:
    cert, key = certificate
    both = tmp_path / "both.pem"
    both.write_bytes(cert.read_bytes() + key.read_bytes())
    with LoloProcess(
        HTTP_FLOW, "--ssl-certfile", str(both), state=tmp_path / "state.sqlite3"
    ) as server:
        assert fetch_tls(server.port, trusting(cert), "GET", "/echo").status == 200


def test_an_idle_https_client_does_not_hold_up_shutdown(
    certificate: tuple[Path, Path], tmp_path: Path
) -> None:
    cert, key = certificate
    with LoloProcess(
        HTTP_FLOW,
        "--ssl-certfile",
        str(cert),
        "--ssl-keyfile",
        str(key),
        "--shutdown-timeout",
        "3",
        state=tmp_path / "state.sqlite3",
    ) as server:
        idle = http.client.HTTPSConnection(
            "127.0.0.1", server.port, context=trusting(cert), timeout=10
        )
        try:
            assert fetch(idle, "GET", "/echo").status == 200  # then kept open, idle
            started = time.monotonic()
            assert server.stop() == 0
            took = time.monotonic() - started
        finally:
            idle.close()
    assert took < 2, f"shutdown took {took:.1f}s"


@pytest.fixture(scope="module")
def bad_key_files(
    openssl: str, certificate: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """A key of another certificate, and the right key encrypted."""
    where = tmp_path_factory.mktemp("bad-keys")
    _, other_key = make_certificate(openssl, where, "other")
    encrypted = where / "encrypted.pem"
    subprocess.run(
        [
            openssl,
            "pkey",
            "-in",
            str(certificate[1]),
            "-aes256",
            "-passout",
            "pass:secret",
            "-out",
            str(encrypted),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return {"other_key": other_key, "encrypted": encrypted}


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing-cert", "--ssl-certfile {tmp}/missing.pem: no such file or directory"),
        ("missing-key", "--ssl-keyfile {tmp}/missing.pem: no such file or directory"),
        ("directory", "--ssl-certfile {tmp}: is a directory"),
        ("key-as-cert", "--ssl-certfile {key}: no PEM certificate in it"),
        ("cert-as-key", "--ssl-keyfile {cert}: no PEM private key in it"),
        ("no-key", "--ssl-certfile {cert}: no private key in it; give the key with --ssl-keyfile"),
        (
            "wrong-key",
            "--ssl-keyfile {other_key}: the private key does not match the certificate in {cert}",
        ),
        ("encrypted-key", "--ssl-keyfile {encrypted}: the private key is encrypted"),
        ("key-only", "--ssl-keyfile needs --ssl-certfile"),
    ],
)
def test_a_bad_certificate_option_exits_2_with_one_line(
    certificate: tuple[Path, Path],
    bad_key_files: dict[str, Path],
    tmp_path: Path,
    case: str,
    message: str,
) -> None:
    cert, key = certificate
    paths = {"tmp": tmp_path, "cert": cert, "key": key, **bad_key_files}
    missing = tmp_path / "missing.pem"
    args = {
        "missing-cert": ["--ssl-certfile", missing, "--ssl-keyfile", key],
        "missing-key": ["--ssl-certfile", cert, "--ssl-keyfile", missing],
        "directory": ["--ssl-certfile", tmp_path, "--ssl-keyfile", key],
        "key-as-cert": ["--ssl-certfile", key, "--ssl-keyfile", cert],
        "cert-as-key": ["--ssl-certfile", cert, "--ssl-keyfile", cert],
        "no-key": ["--ssl-certfile", cert],
        "wrong-key": ["--ssl-certfile", cert, "--ssl-keyfile", paths["other_key"]],
        "encrypted-key": ["--ssl-certfile", cert, "--ssl-keyfile", paths["encrypted"]],
        "key-only": ["--ssl-keyfile", key],
    }[case]
    done = run_briefly(
        str(CHAT), "--port", "0", "--state", str(tmp_path / "s.sqlite3"), *map(str, args)
    )
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert done.stderr.splitlines() == [done.stderr.strip()], done.stderr
    assert done.stderr.strip().startswith("lolo-run: " + message.format(**paths))
    assert not (tmp_path / "s.sqlite3").exists()  # refused before anything opened


# --proxy-headers


FORWARDED = {"X-Forwarded-For": "198.51.100.9, 203.0.113.7", "X-Forwarded-Proto": "https"}


async def websocket_peer(url: str, headers: dict[str, str]) -> str:
    async with connect(url, additional_headers=headers) as ws:
        await ws.send("who am I?")
        return str(json.loads(await asyncio.wait_for(ws.recv(), 5))["peer"])


def client_as_seen(
    *args: str, env: dict[str, str] | None = None, headers: dict[str, str] | None = None
) -> tuple[str, str]:
    """``(ev["peer"], ev["scheme"])`` of one request through a server run with ``args``;
    a WebSocket client sending the same headers must get the same peer."""
    sent = FORWARDED if headers is None else headers
    with LoloProcess(HTTP_FLOW, *args, env={"FORWARDED_ALLOW_IPS": "", **(env or {})}) as server:
        ev = fetch(server.port, "GET", "/echo", headers=sent).json()
        ws_peer = asyncio.run(websocket_peer(server.url("/ws"), sent))
        assert server.stop() == 0
    assert ws_peer.split(":")[0] == ev["peer"].split(":")[0]
    return ev["peer"], ev["scheme"]


def test_forwarded_headers_from_a_trusted_proxy_give_the_clients_address_and_scheme() -> None:
    peer, scheme = client_as_seen("--proxy-headers", "--forwarded-allow-ips", "127.0.0.1")
    assert peer.startswith("203.0.113.7")  # the nearest hop, not the one the client claims
    assert scheme == "https"
    # 127.0.0.1 is the default trust list, and $FORWARDED_ALLOW_IPS may set it.
    assert client_as_seen("--proxy-headers")[0].startswith("203.0.113.7")
    assert client_as_seen("--proxy-headers", env={"FORWARDED_ALLOW_IPS": "::1, 127.0.0.0/8"})[
        0
    ].startswith("203.0.113.7")
    # A trusted hop in the list is skipped over.
    assert client_as_seen("--proxy-headers", "--forwarded-allow-ips", "127.0.0.1,203.0.113.7")[
        0
    ].startswith("198.51.100.9")


@pytest.mark.parametrize(
    "args",
    [
        (),
        ("--proxy-headers", "--forwarded-allow-ips", "10.0.0.0/8"),
    ],
)
def test_forwarded_headers_are_ignored_unless_the_proxy_is_trusted(args: tuple[str, ...]) -> None:
    peer, scheme = client_as_seen(*args)
    assert re.fullmatch(r"127\.0\.0\.1:\d+", peer), peer
    assert scheme == "http"


def test_without_forwarded_headers_the_peer_is_the_connection() -> None:
    peer, scheme = client_as_seen("--proxy-headers", headers={})
    assert re.fullmatch(r"127\.0\.0\.1:\d+", peer), peer
    assert scheme == "http"


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (
            ["--forwarded-allow-ips", "127.0.0.1"],
            {},
            "lolo-run: --forwarded-allow-ips needs --proxy-headers",
        ),
        (
            ["--proxy-headers", "--forwarded-allow-ips", "proxy.local"],
            {},
            "lolo-run: --forwarded-allow-ips: 'proxy.local' does not appear",
        ),
        (
            ["--proxy-headers", "--forwarded-allow-ips", ","],
            {},
            "lolo-run: --forwarded-allow-ips is empty",
        ),
        (
            ["--proxy-headers"],
            {"FORWARDED_ALLOW_IPS": "10.0.0.0/33"},
            "lolo-run: $FORWARDED_ALLOW_IPS: '10.0.0.0/33' does not appear",
        ),
    ],
)
def test_a_bad_trust_list_exits_2_with_one_line(
    tmp_path: Path, args: list[str], env: dict[str, str], message: str
) -> None:
    done = run_briefly(
        str(CHAT), "--port", "0", "--state", str(tmp_path / "s.sqlite3"), *args, env=env
    )
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert done.stderr.startswith(message), done.stderr


# --loop


def uvloop_installed() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.parametrize("loop", ["asyncio", "uvloop", "auto"])
def test_each_event_loop_serves_the_chat(loop: str, tmp_path: Path) -> None:
    if loop == "uvloop" and not uvloop_installed():
        unavailable("needs uvloop (pip install 'lolo-runtime[uvloop]')")
    with LoloProcess(CHAT, "--loop", loop, state=tmp_path / "state.sqlite3") as server:
        sender, heard = asyncio.run(chat(server.url()))
        assert heard == f"{sender} says: hello there"
        assert server.stop() == 0
        log = server.stderr()
    expected = "asyncio" if loop == "asyncio" or not uvloop_installed() else "uvloop"
    assert f"({expected} event loop)" in log


WITHOUT_UVLOOP = [
    sys.executable,
    "-c",
    "import sys; sys.modules['uvloop'] = None\n"
    "from lolo_runtime.cli import main; sys.exit(main(sys.argv[1:]))",
]


def test_loop_uvloop_without_uvloop_exits_2_with_one_line(tmp_path: Path) -> None:
    done = run_briefly(
        str(CHAT),
        "--port",
        "0",
        "--state",
        str(tmp_path / "s.sqlite3"),
        "--loop",
        "uvloop",
        command=WITHOUT_UVLOOP,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        "lolo-run: --loop uvloop: uvloop is not installed (pip install "
        "'lolo-runtime[uvloop]', or use --loop asyncio)"
    ]


@contextmanager
def started(command: list[str]) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """A lolo-run started with ``command`` (not through :class:`LoloProcess`), and its port."""
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        port = 0
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ)
            deadline = time.monotonic() + 15
            while not port and time.monotonic() < deadline and proc.poll() is None:
                if selector.select(0.1):
                    found = re.search(rb"Listening to port (\d+)", proc.stdout.readline())
                    port = int(found.group(1)) if found else 0
        assert port, "did not start"
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


def test_loop_auto_without_uvloop_falls_back_to_asyncio(tmp_path: Path) -> None:
    command = [*WITHOUT_UVLOOP, str(CHAT), "--port", "0", "--state", str(tmp_path / "s.sqlite3")]
    with started(command) as (proc, port):
        sender, heard = asyncio.run(chat(f"ws://127.0.0.1:{port}/socket"))
        assert heard == f"{sender} says: hello there"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        assert proc.stderr is not None
        assert b"(asyncio event loop)" in proc.stderr.read()


# --help and check


@pytest.mark.parametrize("command", [[], ["run"]])
def test_help_describes_the_deployment_options(command: list[str]) -> None:
    done = run_briefly(*command, "--help", env={"COLUMNS": "1000"})  # no wrapping
    assert done.returncode == 0
    text = " ".join(done.stdout.split())  # the columns of the option list
    for claim in (
        "--ssl-certfile FILE serve HTTPS and WSS with this certificate chain (PEM)",
        "--ssl-keyfile FILE the certificate's private key, unencrypted (PEM; omit it when "
        "--ssl-certfile holds the key too)",
        "--proxy-headers behind a reverse proxy: take the client's address (ev['peer']) and "
        "scheme (ev['scheme'] of HTTP triggers) from X-Forwarded-For and X-Forwarded-Proto",
        "--forwarded-allow-ips LIST with --proxy-headers: the trusted proxies",
        "(default: $FORWARDED_ALLOW_IPS, else 127.0.0.1)",
        "--loop {auto,asyncio,uvloop} event loop: auto takes uvloop when it is installed, "
        "else asyncio; uvloop fails when it is not (default: auto)",
        "2 when a flow file is wrong",
    ):
        assert claim in text, claim


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (
            ["--port", "70000"],
            {},
            "lolo-run: error: argument --port: invalid port number value: '70000'",
        ),
        (["--port", "-1"], {}, "lolo-run: error: argument --port: invalid port number value: '-1'"),
        (
            [],
            {"PORT": "99999"},
            "lolo-run: $PORT must be a port number from 0 to 65535, not '99999'",
        ),
    ],
)
def test_a_port_out_of_range_exits_2_without_a_traceback(
    tmp_path: Path, args: list[str], env: dict[str, str], message: str
) -> None:
    done = run_briefly(str(CHAT), "--state", str(tmp_path / "s.sqlite3"), *args, env=env)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1] == message
    assert "Traceback" not in done.stderr
