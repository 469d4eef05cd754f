"""HTTP triggers' open sessions in the inspector: the requests waiting for their chain's
answer, on a real ``lolo-run --inspect``."""

from __future__ import annotations

import threading
from pathlib import Path

from tests.inspector.live_support import http_get, metrics, wait_for
from tests.support import LoloProcess

FLOW = """\
app: slow
nodes:
  - id: slow
    type: lolo/http-trigger
    params: {path: /slow, methods: [GET]}
  - id: nap
    type: lolo/function
    handler: nap.py
    outputs: []
edges:
  - slow.out -> nap.in
"""

NAP = """\
import asyncio
from pathlib import Path

GO = Path(__file__).parent / "go"


async def handler(ev, ctx):
    for _ in range(200):  # until the test creates the file 'go' (10 s at most)
        if GO.exists():
            break
        await asyncio.sleep(0.05)
    ctx.emit("response", {"body": {"slept": True}})
"""


def test_requests_waiting_for_their_answer_are_the_triggers_open_sessions(
    tmp_path: Path,
) -> None:
    (tmp_path / "nap.py").write_text(NAP)
    flow = tmp_path / "slow.yaml"
    flow.write_text(FLOW)
    with LoloProcess(flow, "--inspect", state=tmp_path / "s.sqlite3") as server:

        def waiting() -> float:
            return metrics(server).value("lolo_sessions_open", app="slow", trigger="slow")

        assert waiting() == 0
        answers: list[int] = []
        requests = [
            threading.Thread(target=lambda: answers.append(http_get(server, "/slow")[0]))
            for _ in range(2)
        ]
        for request in requests:
            request.start()
        wait_for(lambda: waiting() == 2, "two requests waiting for their answer")
        (tmp_path / "go").touch()
        for request in requests:
            request.join(10)
        assert answers == [200, 200]
        assert waiting() == 0
