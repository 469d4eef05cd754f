"""Blocking code (issue 10, item 2): a handler that holds the event loop is named in a
warning with how long it held it, and clients are not blamed for the server's stall."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import websockets

from tests.support import LoloProcess

HANDLER = Path(__file__).parent / "handlers" / "blocker.py"


def blocker_flow(folder: Path) -> Path:
    flow = folder / "blocker.yaml"
    flow.write_text(f"""\
app: blocker
nodes:
  - id: ws
    type: lolo/websocket-trigger
    params: {{path: /socket, max_messages_per_second: 20, burst: 40}}
  - id: blocking-node
    type: lolo/function
    handler: {HANDLER}
    outputs: []
edges:
  - ws.message -> blocking-node.in
""")
    return flow


def test_a_blocked_loop_is_reported_and_a_polite_client_is_not_closed(tmp_path: Path) -> None:
    # LoloProcess raises the example chats' rate limit through the environment; this flow
    # sets its own: 20 messages/s, bursts of 40.
    with LoloProcess(blocker_flow(tmp_path)) as app:

        async def main() -> tuple[list[str], int | None]:
            async with (
                websockets.connect(app.url()) as culprit,
                websockets.connect(app.url()) as polite,
            ):
                await culprit.send("block 4")
                heard: list[str] = []
                # 10 messages/s (half the limit) for 7 s: 40 of them during the stall.
                for number in range(70):
                    await polite.send(f"m{number}")
                    await asyncio.sleep(0.1)
                deadline = time.monotonic() + 10
                while len(heard) < 70 and time.monotonic() < deadline:
                    try:
                        heard.append(str(await asyncio.wait_for(polite.recv(), 1)))
                    except TimeoutError:
                        continue
                    except websockets.ConnectionClosed:
                        break
                return heard, polite.close_code

        heard, close_code = asyncio.run(main())
        assert close_code is None, f"the polite client was closed with {close_code}"
        assert heard == [f"echo: m{n}" for n in range(70)]
        log = app.stderr()
        match = re.search(
            r"the event loop was blocked for (\d+\.\d)s by node 'blocking-node' "
            r"\(at .*blocker\.py:\d+ in handler\)",
            log,
        )
        assert match, log
        assert 3.5 <= float(match.group(1)) <= 5.5
        assert (
            "WARNING" in log[: match.start()].splitlines()[-1] + match.group(0)
            or "WARNING" in log.splitlines()[log[: match.start()].count("\n")]
        )


def test_a_fast_client_is_still_closed_for_flooding(tmp_path: Path) -> None:
    with LoloProcess(blocker_flow(tmp_path)) as app:

        async def main() -> int | None:
            async with websockets.connect(app.url()) as flooder:
                for number in range(200):
                    await flooder.send(f"f{number}")
                try:
                    while True:
                        await asyncio.wait_for(flooder.recv(), 5)
                except websockets.ConnectionClosed:
                    pass
                return flooder.close_code

        assert asyncio.run(main()) == 1008
        assert "blocked" not in app.stderr()
