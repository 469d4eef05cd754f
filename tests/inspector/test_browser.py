"""The inspector's page in headless Chromium against a real ``lolo-run --inspect``: the
counts on the graph and in the tables move while two clients chat; a screenshot is kept
as ``test-artifacts/inspector.png``. And with a key, the page asks for it.

Needs Debian's chromium package and the ``playwright`` pip package (its Python API only,
never ``playwright install``); without them the tests skip, except under CI=true.
"""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING

from tests.inspector.live_support import KEY, chat_client
from tests.support import ROOT, LoloProcess

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHAT = ROOT / "flows" / "chat.yaml"
SHOT = ROOT / "test-artifacts" / "inspector.png"
WAIT_MS = 15_000
MESSAGE_EDGE = "ws.message->process-request.msg"


class Chatter:
    """Two chat clients in a thread of their own, sending on request (the page's
    Playwright calls block this thread)."""

    def __init__(self, server: LoloProcess) -> None:
        self.server = server
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.ready = threading.Event()
        self.queue: asyncio.Queue[int] = asyncio.Queue()
        self.task = asyncio.run_coroutine_threadsafe(self._run(), self.loop)

    async def _run(self) -> None:
        async with chat_client(self.server) as (a, a_id), chat_client(self.server) as (b, _):
            self.ready.set()
            sent = 0
            while True:
                count = await self.queue.get()
                if count < 0:
                    return
                for _ in range(count):
                    await a.send(f"message {sent}")
                    assert await asyncio.wait_for(b.recv(), 5) == f"{a_id} says: message {sent}"
                    sent += 1

    def say(self, count: int) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, count)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, -1)
        try:
            self.task.result(timeout=15)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
            self.loop.close()


def count_at_least(page: Page, selector: str, minimum: int) -> int:
    """Wait until the number shown at ``selector`` reaches ``minimum``; return it."""
    page.wait_for_function(
        "([sel, min]) => { const el = document.querySelector(sel);"
        " return el !== null && Number(el.textContent) >= min; }",
        arg=[selector, minimum],
        timeout=WAIT_MS,
    )
    return int(page.locator(selector).text_content() or "")


def test_the_page_shows_the_counts_moving_while_clients_chat(browser: Browser) -> None:
    from playwright.sync_api import expect

    env = {"LOLO_INSPECT_KEY": "", "CHAT_HISTORY": "0"}
    with LoloProcess(CHAT, "--inspect", env=env) as server:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("response", lambda r: errors.append(r.url) if r.status >= 400 else None)
        page.goto(f"http://127.0.0.1:{server.port}/_lolo/")
        expect(page.locator("#status")).to_have_attribute("data-state", "open", timeout=WAIT_MS)
        expect(page.locator("#app")).to_have_text("chat")
        for node in ("ws", "page", "process-request", "affirm-connection", "handle-messages"):
            expect(page.locator(f'#graph g[data-node="{node}"]')).to_be_visible()
        expect(page.locator("#graph path.edge")).to_have_count(5)
        edge = f'#graph text[data-edge="{MESSAGE_EDGE}"] .count'
        calls = '#nodes tr[data-node="handle-messages"] td.calls'
        sessions = '#sessions tr[data-trigger="ws"] td.open'
        expect(page.locator(edge)).to_have_text("0")

        chatter = Chatter(server)
        try:
            assert chatter.ready.wait(10)
            expect(page.locator(sessions)).to_have_text("2", timeout=WAIT_MS)
            chatter.say(10)
            first = count_at_least(page, edge, 10)
            assert count_at_least(page, calls, 10) >= 10
            chatter.say(15)
            assert count_at_least(page, edge, first + 15) == 25
            expect(page.locator(calls)).to_have_text("25", timeout=WAIT_MS)
            expect(page.locator('#nodes tr[data-node="handle-messages"] td.p50')).not_to_have_text(
                "\u2013"  # the page's "no time yet"
            )
            expect(page.locator("#log li").filter(has_text="client has connected")).to_have_count(
                2, timeout=WAIT_MS
            )
            SHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SHOT), full_page=True)
        finally:
            chatter.close()
        expect(page.locator(sessions)).to_have_text("0", timeout=WAIT_MS)
        assert SHOT.is_file() and SHOT.stat().st_size > 10_000
        assert errors == [], errors
        context.close()


def test_with_a_key_the_page_asks_for_it_and_keeps_it_for_the_tab(browser: Browser) -> None:
    from playwright.sync_api import expect

    with LoloProcess(CHAT, "--inspect", env={"LOLO_INSPECT_KEY": KEY}) as server:
        context = browser.new_context()
        page = context.new_page()
        page.goto(f"http://127.0.0.1:{server.port}/_lolo/")
        status = page.locator("#status")
        expect(status).to_have_attribute("data-state", "need-key", timeout=WAIT_MS)
        expect(page.locator("#figures")).to_be_hidden()
        page.get_by_label("Inspector key").fill("not-the-key")
        page.get_by_role("button", name="Open").click()
        expect(page.locator("#key-help")).to_contain_text("not accepted", timeout=WAIT_MS)
        page.get_by_label("Inspector key").fill(KEY)
        page.get_by_role("button", name="Open").click()
        expect(status).to_have_attribute("data-state", "open", timeout=WAIT_MS)
        expect(page.locator("#app")).to_have_text("chat", timeout=WAIT_MS)
        page.reload()  # the key is kept in sessionStorage: no form this time
        expect(page.locator("#app")).to_have_text("chat", timeout=WAIT_MS)
        expect(page.locator("#key-form")).to_be_hidden()
        assert KEY not in page.url
        context.close()
