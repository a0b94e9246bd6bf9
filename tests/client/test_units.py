"""The client's parts that need no server: signature checks against the server's signer and the Standard Webhooks
library, typed errors from error answers (Retry-After included), and the event-stream parser."""

from __future__ import annotations

import base64
import email.utils
import time
from datetime import UTC, datetime

import pytest
from spindle_client import InvalidSignature, errors, verify_delivery
from spindle_client.events import Parser
from spindle_client.webhooks import sign
from standardwebhooks import Webhook

from config import outbound

SECRET = "whsec_" + base64.b64encode(b"k" * 24).decode()
OTHER = "whsec_" + base64.b64encode(b"o" * 24).decode()
BODY = '{"id":"job_1","payload":{"n":"é"}}'
NOW = 1_800_000_000  # every check below passes `now`: a case built at collection stays valid however late it runs


def _headers(secret: str = SECRET, ts: int = NOW, body: str = BODY) -> dict[str, str]:
    return {
        "webhook-id": "exe_1",
        "webhook-timestamp": str(ts),
        "webhook-signature": outbound.sign(secret, "exe_1", ts, body),
    }


def test_signatures_match_the_servers_signer_and_the_standard_library():
    ts = int(time.time())
    assert sign(SECRET, "exe_1", ts, BODY) == outbound.sign(SECRET, "exe_1", ts, BODY)
    assert sign(SECRET, "exe_1", ts, BODY.encode()) == outbound.sign(SECRET, "exe_1", ts, BODY)
    library = Webhook(SECRET).sign("exe_1", datetime.fromtimestamp(ts, UTC), BODY)
    verify_delivery(
        {"Webhook-Id": "exe_1", "Webhook-Timestamp": str(ts), "Webhook-Signature": library}, BODY, SECRET
    )


def test_verify_delivery_accepts_bytes_or_text_and_a_rotation_header():
    headers = _headers()
    verify_delivery(headers, BODY, SECRET, now=NOW)
    verify_delivery(headers, BODY.encode(), SECRET, now=NOW)
    rotated = {
        **headers,
        "webhook-signature": f"{_headers(OTHER)['webhook-signature']} {headers['webhook-signature']}",
    }
    verify_delivery(rotated, BODY, SECRET, now=NOW)
    verify_delivery(rotated, BODY, OTHER, now=NOW)


@pytest.mark.parametrize(
    "headers, body, secret",
    [
        (_headers(), BODY.replace("1", "2"), SECRET),  # tampered body
        (_headers(), BODY, OTHER),  # another secret
        (_headers(ts=NOW - 301), BODY, SECRET),  # too old: a replay
        (_headers(ts=NOW + 301), BODY, SECRET),  # from the future
        ({**_headers(), "webhook-id": "exe_2"}, BODY, SECRET),  # signed for another message
        ({**_headers(), "webhook-signature": "v2," + _headers()["webhook-signature"][3:]}, BODY, SECRET),
        ({k: v for k, v in _headers().items() if k != "webhook-signature"}, BODY, SECRET),
        ({**_headers(), "webhook-timestamp": "soon"}, BODY, SECRET),
    ],
)
def test_verify_delivery_refuses(headers, body, secret):
    with pytest.raises(InvalidSignature):
        verify_delivery(headers, body, secret, now=NOW)


def test_tolerance_is_configurable():
    old = _headers(ts=NOW - 1000)
    with pytest.raises(InvalidSignature):
        verify_delivery(old, BODY, SECRET, now=NOW)
    verify_delivery(old, BODY, SECRET, now=NOW, tolerance_s=1200)


def test_errors_are_typed_by_status_and_carry_the_envelope():
    body = b'{"error": {"code": "RATE_LIMITED", "message": "slow down", "details": {"limit": 60}}}'
    error = errors.from_response(429, {"retry-after": "7"}, body)
    assert isinstance(error, errors.RateLimitedError) and isinstance(error, errors.SpindleError)
    assert (error.status, error.code, error.message, error.details, error.retry_after) == (
        429, "RATE_LIMITED", "slow down", {"limit": 60}, 7.0,
    )  # fmt: skip
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    unavailable = errors.from_response(
        503, {"retry-after": later}, b'{"error": {"code": "SERVICE_UNAVAILABLE", "message": "x"}}'
    )
    assert isinstance(unavailable, errors.ServiceUnavailableError) and 25 < unavailable.retry_after <= 30
    assert errors.from_response(404, {"retry-after": "5"}, b"{}").retry_after is None
    assert isinstance(errors.from_response(422, {}, b""), errors.InvalidRequestError)
    assert isinstance(errors.from_response(409, {}, b""), errors.ConflictError)
    plain = errors.from_response(502, {}, b"<html>bad gateway</html>")
    assert isinstance(plain, errors.ServerError) and plain.status == 502 and plain.code == ""


def test_the_stream_parser_follows_the_event_stream_rules():
    parser = Parser()
    lines = [
        "retry: 2000", "", "event: connected", 'data: {"queue": null}', "", ": heartbeat", "",
        "id: evt_1", "event: job:waiting", 'data: {"id": "evt_1",', 'data:"type": "job:waiting"}', "",
    ]  # fmt: skip
    messages = [m for m in map(parser.line, lines) if m is not None]
    assert [(m.event, m.id) for m in messages] == [("connected", None), ("job:waiting", "evt_1")]
    assert messages[1].data == ['{"id": "evt_1",', '"type": "job:waiting"}']
    assert parser.retry_s == 2.0 and parser.last_id == "evt_1"
