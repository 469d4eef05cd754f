"""``logs.redact``: what a log line may never show, whatever its shape."""

from __future__ import annotations

import pytest

from lolo_runtime.logs import redact

KEY = "lolo_0123abcd_" + "S3cr3t-value_with_underscores_42"
SECRET = KEY.split("_", 2)[2]


@pytest.mark.parametrize(
    "line",
    [
        f"GET /socket?lolo-api-key={KEY} HTTP/1.1",
        f"< lolo-api-key: {KEY}",
        f"< Authorization: Bearer {KEY}",
        f"< authorization: bearer {KEY}",
        f"headers={{'authorization': 'Bearer {KEY}'}}",
        f"a key on its own: {KEY}.",
        f"GET /x?lolo-api-key%3D{KEY}",
        # percent-encoded names, values, both, twice, in any case
        f"GET /socket?lolo%2Dapi%2Dkey={KEY} HTTP/1.1",
        "GET /socket?lolo-api-key=" + KEY.replace("_", "%5F") + " HTTP/1.1",
        "GET /socket?lolo%2dapi%2dkey=" + KEY.replace("_", "%5f") + "&x=1 HTTP/1.1",
        "GET /socket?lolo%252Dapi%252Dkey=" + KEY.replace("_", "%255F") + " HTTP/1.1",
        "GET /socket?" + "".join(f"%{b:02X}" for b in f"lolo-api-key={KEY}".encode()),
        "< Authorization: Bearer%20" + KEY.replace("_", "%5F"),
        "GET /p/" + KEY.replace("_", "%5F") + " HTTP/1.1",
    ],
)
def test_a_key_never_survives(line: str) -> None:
    cleaned = redact(line)
    assert SECRET not in cleaned
    assert "[REDACTED]" in cleaned


def test_a_bearer_token_of_any_shape_is_masked() -> None:
    cleaned = redact("Authorization: Bearer eyJhbGciOi.J9.payload-sig")
    assert "eyJhbGciOi" not in cleaned
    assert cleaned == "Authorization: Bearer [REDACTED]"


def test_ordinary_text_is_left_alone() -> None:
    line = "client has connected from 127.0.0.1:5000; a bear ate it"
    assert redact(line) == line


def test_a_workers_lines_carry_its_number_in_both_formats() -> None:
    import json
    import logging

    from lolo_runtime.logs import RedactingFormatter

    record = logging.LogRecord("lolo.node", logging.INFO, __file__, 1, "hello", None, None)
    record.app, record.node, record.session = "chat", "greeter", "s1"
    text = RedactingFormatter(json_lines=False, worker=2).format(record)
    assert text.endswith(" INFO    worker=2 [chat/greeter session=s1] hello")
    entry = json.loads(RedactingFormatter(json_lines=True, worker=2).format(record))
    assert (entry["worker"], entry["node"], entry["message"]) == (2, "greeter", "hello")
    alone = RedactingFormatter(json_lines=False).format(record)
    assert "worker" not in alone and alone.endswith(" INFO    [chat/greeter session=s1] hello")
    assert "worker" not in json.loads(RedactingFormatter(json_lines=True).format(record))
