"""The page at / in a real headless Chromium, against a real API and worker: it loads without an error,
sends, shows a payment reach COMPLETED, shows markup as text, and teaches the rate limit and replays."""

import json
import re
import struct
import subprocess
import sys
import threading
import time
from wsgiref.simple_server import make_server

import pytest

from lib.api.dashboard import CONTENT_TYPE, PAGE_PATH, content_security_policy
from lib.devtools.browser import Browser, chromium_problem
from lib.devtools.processes import ROOT, http, wait_for

pytestmark = pytest.mark.skipif(chromium_problem() is not None, reason=str(chromium_problem()))

# Each row of "Payments this page sent": [data-id, then the cells' text].
ROWS = ("[...document.querySelectorAll('#sent tr')]"
        ".map((tr) => [tr.dataset.id, ...[...tr.cells].map((td) => td.textContent)])")
EXCHANGE = "document.getElementById('exchange').textContent"
STATUS = 5  # the status column in a row of ROWS
MARKUP = "<img/src=x/onerror=document.title='owned'><script>document.title='owned'</script>"


@pytest.fixture
def browser(tmp_path):
    with Browser(str(tmp_path / "chromium.log")) as browser:
        yield browser


@pytest.fixture
def stack(redis, start_api, launch):
    """A real API and worker process (a payment takes 0.5 s) on an empty store; the API's URL and the worker."""
    api = start_api(processing_delay=0.5)
    return api, launch("paypoc_worker.py", processing_delay=0.5)


def click(browser, button_id):
    browser.evaluate(f"document.getElementById({json.dumps(button_id)}).click()")


def statuses_until_final(browser, timeout=20):
    """The statuses the page shows in its newest row, in order, until COMPLETED or FAILED (real time)."""
    seen, deadline = [], time.monotonic() + timeout
    while not seen or seen[-1] not in ("COMPLETED", "FAILED"):
        assert time.monotonic() < deadline, f"the page showed {seen}, nothing final"
        rows = browser.evaluate(ROWS)
        if rows and (not seen or rows[0][STATUS] != seen[-1]):
            seen.append(rows[0][STATUS])
        time.sleep(0.05)
    return seen


def test_the_page_loads_shows_the_live_worker_and_logs_nothing(browser, stack):
    api, worker = stack
    browser.open(api + "/")
    # The tables come from GET /summary: the worker process is there by its pid, once its heartbeat is written.
    worker_pid = wait_for(worker.children)[0]  # the worker process its supervisor forked
    assert browser.wait_for(f"document.getElementById('workers').textContent.includes('-{worker_pid}')")
    assert browser.evaluate("[...document.querySelectorAll('#payments td')].map((td) => td.textContent)") == \
        ["PENDING", "0", "PROCESSING", "0", "COMPLETED", "0", "FAILED", "0"]
    assert browser.problems() == []


def test_send_shows_the_request_as_curl_and_the_payment_until_completed(browser, stack):
    api, _ = stack
    browser.open(api + "/")
    click(browser, "send")
    payment_id = browser.wait_for(f"({ROWS})[0]")[0]
    seen = statuses_until_final(browser)
    assert seen[-1] == "COMPLETED" and seen == [s for s in ("PENDING", "PROCESSING", "COMPLETED") if s in seen]
    # What the page shows is what the API has.
    payment = http("GET", f"{api}/payments/{payment_id}")[2]
    assert browser.evaluate(ROWS) == [[payment_id, payment_id, "user_123", "1500", "XAF", "COMPLETED", "1", "",
                                       payment["updated_at"]]]
    exchange = browser.evaluate(EXCHANGE)
    assert exchange.startswith(f"$ curl -i -X POST {api}/payments \\\n    -H 'Content-Type: application/json' \\\n"
                               "    -H 'Idempotency-Key: ")
    assert """-d '{"user_id":"user_123","amount":1500,"currency":"XAF"}'\nHTTP/1.1 201 Created\n""" in exchange
    assert f"Location: /payments/{payment_id}\n" in exchange and 'RateLimit: "default";r=4;t=12' in exchange
    # The worker's jobs, by outcome, once its next heartbeat counts this one.
    assert browser.wait_for("document.getElementById('workers').textContent.includes('1 completed')", timeout=10)
    assert browser.problems() == []


def test_a_user_id_with_markup_is_shown_as_text(browser, stack):
    api, _ = stack
    browser.open(api + "/")
    browser.evaluate(f"document.forms.pay.elements.user_id.value = {json.dumps(MARKUP)}")
    click(browser, "send")
    assert statuses_until_final(browser)[-1] == "COMPLETED"  # shown from the 201 and from every poll since
    assert browser.evaluate(ROWS)[0][2] == MARKUP
    assert MARKUP in browser.evaluate(EXCHANGE)
    # Nothing was made of it: no image, no second script, the title untouched; the DOM holds it escaped.
    assert browser.evaluate("[document.images.length, document.scripts.length, document.title]") == [0, 1, "paypoc"]
    dom = browser.evaluate("document.documentElement.outerHTML")
    assert "&lt;img/src=x/onerror=document.title='owned'&gt;&lt;script&gt;" in dom and "<img" not in dom
    assert browser.problems() == []


def test_the_burst_shows_five_201s_then_five_429s_with_the_rate_limit_headers(browser, stack):
    api, _ = stack
    browser.open(api + "/")
    click(browser, "burst")
    exchange = browser.wait_for(f"{EXCHANGE}.includes('\\n10  ') && {EXCHANGE}")
    assert exchange.startswith(f"$ for i in {{1..10}}; do\n  curl -i -X POST {api}/payments")
    line = r'^ ?(\d+)  HTTP/1\.1 (\d{3}) [A-Za-z ]+ RateLimit: "default";r=(\d);t=\d+(  Retry-After: \d+)?$'
    answers = re.findall(line, exchange, re.MULTILINE)
    assert [(int(n), status, int(left), bool(retry)) for n, status, left, retry in answers] == \
        [(n, "201", 5 - n, False) for n in range(1, 6)] + [(n, "429", 0, True) for n in range(6, 11)]
    assert len(browser.evaluate(ROWS)) == 5  # the five it took, on their way through the queue
    # The browser reports each refused request as a failed load; there is nothing else.
    assert browser.problems() == \
        ["error (network): Failed to load resource: the server responded with a status of 429 (Too Many Requests)"] * 5


def test_resending_with_the_idempotency_key_shows_the_replay_of_the_same_payment(browser, stack):
    api, _ = stack
    browser.open(api + "/")
    assert browser.evaluate("document.getElementById('replay').disabled") is True  # nothing sent yet
    click(browser, "send")
    first = browser.wait_for(f"{EXCHANGE}.includes('201 Created') && {EXCHANGE}")
    click(browser, "replay")
    again = browser.wait_for(f"{EXCHANGE}.includes('Idempotent-Replayed: true') && {EXCHANGE}")
    key = re.compile(r"Idempotency-Key: [0-9a-f]{32}")
    location = re.compile(r"Location: /payments/\S+")
    assert key.search(again).group() == key.search(first).group()
    assert location.search(again).group() == location.search(first).group()
    assert "HTTP/1.1 201 Created" in again and len(browser.evaluate(ROWS)) == 1
    assert len(http("GET", f"{api}/payments?user_id=user_123")[2]["data"]) == 1
    assert browser.problems() == []


@pytest.fixture
def serve_page():
    """serve_page(html): that page at / with the policy the API would send with it (anything else 404); its URL."""
    servers = []

    def serve(html):
        headers = [("Content-Type", CONTENT_TYPE), ("Content-Security-Policy", content_security_policy(html))]

        def app(environ, start_response):
            if environ["PATH_INFO"] == "/":
                start_response("200 OK", headers)
                return [html.encode()]
            start_response("404 Not Found", [("Content-Type", "application/json")])
            return [b'{"error": "not found"}']

        server = make_server("127.0.0.1", 0, app)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}/"

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


def test_the_browser_reports_a_script_the_policy_refuses(browser, serve_page):
    # Injected markup runs through an inline handler like this one: the policy refuses it, and the test sees it.
    html = PAGE_PATH.read_text().replace('<button id="send">', """<button id="send" onclick="document.title='ran'">""")
    browser.open(serve_page(html))
    click(browser, "send")
    browser.wait_for(f"{EXCHANGE} !== 'Press Send.'")
    assert browser.evaluate("document.title") == "paypoc"
    refused = [problem for problem in browser.problems() if problem.startswith("error (security): ")]
    assert len(refused) == 1 and "inline event handler" in refused[0] and "Content Security Policy" in refused[0]


def test_the_browser_reports_an_uncaught_error(browser, serve_page):
    html = PAGE_PATH.read_text().replace("\npoll();\n", "\npoll();\nnull.boom;\n")
    browser.open(serve_page(html))
    assert any(problem.startswith("TypeError: Cannot read properties of null (reading 'boom')")
               for problem in browser.problems())


def test_make_screenshot_writes_the_page_after_the_burst_as_a_png(tmp_path):
    out = tmp_path / "page.png"
    result = subprocess.run([sys.executable, "-m", "lib.devtools.screenshot", "--out", str(out)], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout == f"wrote {out}\n", result.stdout + result.stderr
    png = out.read_bytes()
    width, height = struct.unpack(">II", png[16:24])  # the IHDR chunk, first after the signature
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and width == 1200 and height > 900
