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
