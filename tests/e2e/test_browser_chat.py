"""The chat page (flows/public/) in headless Chromium against a real ``lolo-run``.

Needs Debian's chromium package and the ``playwright`` pip package (its Python API only:
the browser is /usr/bin/chromium, never one downloaded by ``playwright install``). Without
them the tests skip, except on CI (``CI=true``), where they fail.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.support import ROOT, LoloProcess, free_port, lolo_keys

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHAT = ROOT / "flows" / "chat.yaml"
CHAT_AUTH = ROOT / "flows" / "chat-auth.yaml"
WAIT_MS = 15_000


class Tab:
    """One page of the chat, with the uncaught script errors it raised."""

    def __init__(self, browser: Browser, url: str):
        self.context = browser.new_context(viewport={"width": 800, "height": 600})
        self.page: Page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.goto(url)

    def connection_id(self) -> str:
        """Wait for the greeting; return the id the page shows."""
        from playwright.sync_api import expect

        expect(self.page.locator("#status")).to_have_attribute(
            "data-state", "open", timeout=WAIT_MS
        )
        expect(self.page.locator("#connection-id")).not_to_have_text("(not connected)")
        return self.page.locator("#connection-id").inner_text()

    def say(self, text: str) -> None:
        self.page.fill("#message", text)
        self.page.press("#message", "Enter")

    def expect_line(self, text: str, count: int = 1) -> None:
        from playwright.sync_api import expect

        lines = self.page.locator("#log li").filter(has_text=text)
        expect(lines).to_have_count(count, timeout=WAIT_MS)
        if count:
            expect(lines.first).to_have_text(text)

    def enter_key(self, key: str) -> None:
        from playwright.sync_api import expect

        expect(self.page.locator("#key")).to_be_visible(timeout=WAIT_MS)
        self.page.get_by_label("API key").fill(key)
        self.page.get_by_role("button", name="Connect").click()

    def close(self) -> None:
        assert self.errors == [], f"script errors on the page: {self.errors}"
        self.context.close()


@pytest.fixture
def tabs(browser: Browser) -> Iterator[Any]:
    opened: list[Tab] = []

    def open_tab(url: str) -> Tab:
        tab = Tab(browser, url)
        opened.append(tab)
        return tab

    yield open_tab
    for tab in opened:
        tab.close()


def test_two_pages_chat_and_a_third_sees_the_history(tabs: Any, tmp_path: Path) -> None:
    with LoloProcess(CHAT) as server:
        url = f"http://127.0.0.1:{server.port}/"
        a, b = tabs(url), tabs(url)
        a_id, b_id = a.connection_id(), b.connection_id()
        assert a_id != b_id
        a.say("hello from A")
        b.expect_line(f"{a_id} says: hello from A")
        a.expect_line("you: hello from A")
        b.say("hi back <b>not bold</b>")
        a.expect_line(f"{b_id} says: hi back <b>not bold</b>")
        assert a.page.locator("#log b").count() == 0, "message text was parsed as HTML"

        c = tabs(url)
        c.connection_id()
        c.expect_line(f"{a_id} says: hello from A")
        c.expect_line(f"{b_id} says: hi back <b>not bold</b>")
        c.say("third")
        a.expect_line(f"{c.connection_id()} says: third")

        from playwright.sync_api import expect

        # Accessibility basics: the log announces additions, the inputs have labels.
        log = b.page.locator("#log")
        expect(log).to_have_attribute("aria-live", "polite")
        expect(b.page.get_by_role("textbox", name="Message", exact=True)).to_be_visible()
        shot = Path(os.environ.get("LOLO_ARTIFACTS", tmp_path)) / "browser-chat.png"
        shot.parent.mkdir(parents=True, exist_ok=True)
        b.page.screenshot(path=str(shot))
        assert shot.is_file() and shot.stat().st_size > 0


def test_the_auth_chat_works_with_a_typed_key(tabs: Any, tmp_path: Path) -> None:
    state = tmp_path / "state.sqlite3"
    key = lolo_keys(state, "create", "--email", "you@example.com")
    with LoloProcess(CHAT_AUTH, state=state) as server:
        base = f"http://127.0.0.1:{server.port}/"
        a = tabs(base + "?auth")  # asks for a key before connecting
        from playwright.sync_api import expect

        expect(a.page.locator("#status")).to_have_attribute("data-state", "need-key")
        a.enter_key(key)
        a.connection_id()

        b = tabs(base)  # tries without a key, is refused, then asks for one
        b.enter_key("lolo_wrong_key")
        expect(b.page.locator("#key-help")).to_contain_text(
            "is the API key right?", timeout=WAIT_MS
        )
        b.enter_key(key)
        b.connection_id()
        expect(b.page.locator("#key-form")).to_be_hidden()

        a.say("signed message")
        b.expect_line("you@example.com says: signed message")
        b.say("and back")
        a.expect_line("you@example.com says: and back")


def test_a_page_reconnects_after_a_restart_without_repeating_messages(
    tabs: Any, tmp_path: Path
) -> None:
    port, state = free_port(), tmp_path / "state.sqlite3"
    # LoloProcess passes --port 0 first; argparse keeps the last --port given.
    with LoloProcess(CHAT, "--port", str(port), state=state) as first:
        url = f"http://127.0.0.1:{first.port}/"
        a, b = tabs(url), tabs(url)
        a_id, b_id = a.connection_id(), b.connection_id()
        a.say("before the restart")
        b.expect_line(f"{a_id} says: before the restart")
        assert first.stop() == 0  # SIGTERM: clients get 1001
    from playwright.sync_api import expect

    expect(b.page.locator("#status")).not_to_have_attribute("data-state", "open")
    b.expect_line("Disconnected: server shutting down (code 1001).")
    with LoloProcess(CHAT, "--port", str(port), state=state) as second:
        assert second.port == port
        new_b = b.connection_id()
        new_a = a.connection_id()
        assert new_b != b_id
        a.say("after the restart")
        b.expect_line(f"{new_a} says: after the restart")
        b.expect_line("Reconnected.")
        # The history sent on reconnecting holds a message B has already shown.
        b.expect_line(f"{a_id} says: before the restart", count=1)
        a.expect_line("you: before the restart", count=1)
