"""GET / and GET /summary in-process: the page, its Content-Security-Policy, and the JSON it reads."""

import re
import time

import pytest

from lib.api.dashboard import PAGE_PATH, load_page, only_block, source_hash
from lib.store.workers import write_heartbeat
from tests.conftest import WALKTHROUGH_BODY


def policy_of(headers):
    """The Content-Security-Policy header as {directive: [sources]}."""
    return {name: sources for name, *sources in
            (directive.split() for directive in headers["Content-Security-Policy"].split(";"))}


def test_the_page_is_html_with_the_safe_headers(client):
    status, headers, html = client.request_text("GET", "/")
    assert status == 200 and html == PAGE_PATH.read_text(encoding="utf-8")
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert headers["Cache-Control"] == "no-store" and headers["X-Content-Type-Options"] == "nosniff"
    assert int(headers["Content-Length"]) == len(html.encode())


def test_the_pages_policy_lets_only_its_own_script_and_style_run(client):
    _, headers, html = client.request_text("GET", "/")
    assert policy_of(headers) == {
        "default-src": ["'none'"],
        "script-src": [source_hash(only_block(html, "script"))],  # no 'unsafe-inline', no 'self', no host
        "style-src": [source_hash(only_block(html, "style"))],
        "connect-src": ["'self'"],
        "img-src": ["data:"],
        "base-uri": ["'none'"],
        "form-action": ["'none'"],
        "frame-ancestors": ["'none'"],
    }
    # The hash is the one CSP defines: base64 of the SHA-256 of the block's UTF-8 text.
    assert source_hash("alert(1)") == "'sha256-bhHHL3z2vDgxUt0W3dWQOrprscmda2Y5pLsLg4GF+pI='"


def test_head_of_the_page_sends_its_headers_without_the_body(client):
    status, headers, body = client.request_raw("HEAD", "/")
    assert status == 200 and body == b"" and "Content-Security-Policy" in headers
    assert int(headers["Content-Length"]) == len(PAGE_PATH.read_bytes())


def test_the_json_answers_carry_no_page_headers(client):
    # The page must not change any other answer: the same five headers as ever.
    _, headers, _ = client.request("GET", "/health")
    assert set(headers) == {"Content-Type", "Cache-Control", "X-Content-Type-Options", "Content-Length",
                            "X-Request-ID"}


@pytest.mark.parametrize("change, count", [("<script>", 0), ("<script>", 2), ("<style>", 0), ("<style>", 2)])
def test_a_page_the_policy_cannot_describe_stops_start_up(tmp_path, change, count):
    html = PAGE_PATH.read_text(encoding="utf-8")
    tag = change.strip("<>")
    block = f"<{tag}>{only_block(html, tag)}</{tag}>"
    page = tmp_path / "page.html"
    page.write_text(html.replace(block, block * count))
    with pytest.raises(ValueError, match=f"exactly one <{tag}> block, not {count}"):
        load_page(page)


def test_summary_shows_payments_by_status_totals_the_queue_and_the_workers(make_client, redis, tube, env):
    client = make_client(rate_limit=2)
    client.post_payment(WALKTHROUGH_BODY, headers={"HTTP_IDEMPOTENCY_KEY": "k"})
    client.post_payment(WALKTHROUGH_BODY, headers={"HTTP_IDEMPOTENCY_KEY": "k"})  # a replay, and a second job
    client.post_payment(WALKTHROUGH_BODY)
    client.post_payment(WALKTHROUGH_BODY)  # the third for user_123: rate-limited
    tube.bury(tube.reserve(timeout=0))
    beat = {"id": "vm-1", "host": "vm", "pid": 1, "threads": 2,
            "started_at": "2026-11-24T08:00:00.000000Z", "last_seen": "2026-11-24T08:00:02.000000Z"}
    jobs_done, settings = {"completed": 7, "failed": 1}, {"processing_delay": 3.0, "failure_rate": 0.0}
    write_heartbeat(redis, beat, jobs_done, settings)
    status, _, body = client.request("GET", "/summary")
    assert status == 200
    assert body == {
        "payments": {"PENDING": 2, "PROCESSING": 0, "COMPLETED": 0, "FAILED": 0},
        "totals": {"payments_created": 2, "payments_completed": 0, "payments_failed": 0, "payments_retried": 0,
                   "rate_limited": 1, "idempotent_replays": 1},
        "tube": tube.using(),
        "jobs": {"ready": 2, "reserved": 0, "delayed": 0, "buried": 1, "total_put": 3},
        "servers": {f"{host}:{port}": {"ready": 2, "reserved": 0, "delayed": 0, "buried": 1, "total_put": 3}
                    for host, port in [env["BEANSTALK_ADDR"].split(":")]},
        "workers": [{**beat, "jobs_done": jobs_done, "settings": settings}],
    }
    # The queue and the workers, read as GET /queue reads them.
    queue = client.request("GET", "/queue")[2]
    assert {name: body[name] for name in queue} == queue


def test_summary_of_an_empty_store_counts_zero_everywhere(client):
    body = client.request("GET", "/summary")[2]
    assert set(body["payments"].values()) == {0} and set(body["totals"].values()) == {0}
    assert body["workers"] == [] and body["jobs"]["total_put"] == 0


def test_summary_answers_503_fast_when_redis_is_down(make_client):
    client = make_client(redis_url="redis://127.0.0.1:1/0")
    started = time.monotonic()
    status, headers, body = client.request("GET", "/summary")
    assert status == 503 and headers["Retry-After"] == "1" and re.search("unavailable", body["error"])
    assert time.monotonic() - started < 2
