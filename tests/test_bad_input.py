"""Generated bad input (a fixed seed) against the running server: every request answered with a 4xx
and no traceback (JSON from the app), nothing stored."""

import http.client
import json
import random
import socket

from lib.devtools.processes import http as http_request
from tests.conftest import all_keys

SEED = 20261124
VALID = {"user_id": '"fuzz-user"', "amount": "10", "currency": '"USD"'}  # raw JSON text per field
WRONG = {
    "user_id": ["123", "1.5", "true", "null", "[]", "{}", '""', '" "', '"a b"', json.dumps("x" * 129),
                json.dumps("x" * 5000), '"nul\\u0000"', '"\\u202eevil"', '"\\ud800"', '"tab\\t"', '["u"]',
                '{"id": "u"}', '"line\\nbreak"'],
    "amount": ['"abc"', "true", "false", "null", "[]", "{}", '""', '"1e3"', '"1,00"', "0", "-1", "-0", "-0.0",
               '"-0"', "1e400", "NaN", "Infinity", "-Infinity", "10000000000001", "0.001", '"0x10"',
               "1e-999999", "1e999999", "[1]", '{"value": 1}', '"\\u0661\\u0662"', "1.5e-3", "-1e308"],
    "currency": ["1", "true", "null", "[]", "{}", '""', '"US"', '"USDD"', '"usd1"', '"XXX"', '"XAU"',
                 '"\\u20ac\\u20ac\\u20ac"', '"u$d"', '"USD\\u0000"', '" USD"'],
}


def body_text(fields):
    """A JSON object written from (key, raw JSON value) pairs; keys may repeat on purpose."""
    return "{" + ", ".join(f"{json.dumps(key)}: {value}" for key, value in fields) + "}"


def json_cases(rng):
    """(body bytes, content type) pairs, every one of them a request the API must refuse."""
    fields = list(VALID.items())
    for field, wrongs in WRONG.items():  # every field with every wrong value
        for wrong in wrongs:
            yield body_text([(k, wrong if k == field else v) for k, v in fields]).encode(), "application/json"
    for _ in range(400):  # one to three fields wrong at once, in random order, random key spelling
        broken = rng.sample(list(WRONG), rng.randint(1, 3))
        pairs = [(k, rng.choice(WRONG[k]) if k in broken else v) for k, v in fields]
        rng.shuffle(pairs)
        yield body_text(pairs).encode(), "application/json"
    for _ in range(60):  # missing fields
        kept = rng.sample(fields, rng.randint(0, 2))
        yield body_text(kept).encode(), "application/json"
    for _ in range(60):  # an unknown field
        yield body_text(fields + [(rng.choice(["note", "Amount", "user", "", "\u0000", "x" * 300]), "1")]).encode(), \
            "application/json"
    for _ in range(60):  # a key twice, same or different value
        key = rng.choice(list(VALID))
        yield body_text(fields + [(key, rng.choice([VALID[key]] + WRONG[key]))]).encode(), "application/json"
    for _ in range(60):  # deep nesting, as the whole body or as a value
        depth = rng.choice([10, 100, 1000, 5000, 20000, 40000])
        nested = "[" * depth + "1" + "]" * depth
        whole = rng.random() < 0.5
        yield (nested if whole else body_text([("user_id", '"u"'), ("amount", nested), ("currency", '"USD"')])).encode(), \
            "application/json"
    for _ in range(60):  # overlong strings, near and over the 64 KiB limit
        size = rng.choice([200, 10_000, 65_000, 70_000, 200_000])
        field = rng.choice(list(VALID))
        yield body_text([(k, json.dumps("x" * size) if k == field else v) for k, v in fields]).encode(), \
            "application/json"
    for _ in range(100):  # huge exponents and negative zeros
        amount = rng.choice([f"1e{rng.randint(13, 10**9)}", f"-1e{rng.randint(1, 10**6)}", f"1e-{rng.randint(3, 10**9)}",
                             "-0", "-0.0", "-0e10", f"{'9' * rng.randint(14, 5000)}", f"0.{'0' * rng.randint(2, 3000)}1"])
        yield body_text([("user_id", '"u"'), ("amount", amount), ("currency", '"USD"')]).encode(), "application/json"
    for _ in range(100):  # unicode: control characters, NUL, surrogates, invalid UTF-8
        bad = rng.choice(["\u0000", "\u0007", "\u2028", "\ufeff", "\ud834", "\x7f", "\u200b"])
        user = "u" + bad + "ser"
        raw = body_text([("user_id", json.dumps(user, ensure_ascii=rng.random() < 0.5)), ("amount", "1"),
                         ("currency", '"USD"')])
        yield raw.encode("utf-8", "surrogatepass"), "application/json"
        yield b'{"user_id": "\xff\xfe\xc0", "amount": 1, "currency": "USD"}', "application/json"
    for _ in range(150):  # random bytes
        yield rng.randbytes(rng.randint(1, 3000)), "application/json"
    for _ in range(60):  # not an object, or cut short
        text = body_text(fields)
        yield rng.choice(["[]", '"text"', "42", "null", "true", text[: rng.randint(0, len(text) - 1)]]).encode(), \
            "application/json"
    for _ in range(60):  # a good body with a content type that is not JSON (or none)
        yield body_text(fields).encode(), rng.choice(["text/plain", "application/xml", "", "application/jsonx",
                                                      "multipart/form-data", "application/x-www-form-urlencoded"])


def raw_cases(rng):
    """Whole HTTP requests as bytes: lying lengths, chunked bodies, oversized headers, odd lines."""
    good = body_text(list(VALID.items())).encode()
    head = b"POST /payments HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n"
    for _ in range(40):  # Content-Length shorter than the body, nonsense, or twice
        length = rng.choice([str(rng.randint(0, len(good) - 1)), "-1", "abc", "1e3", " ", "99999999999999999999"])
        yield head + f"Content-Length: {length}\r\n\r\n".encode() + good
    for _ in range(10):
        yield head + b"Content-Length: 5\r\nContent-Length: 50\r\n\r\n" + good
    for _ in range(60):  # chunked bodies: bad JSON well chunked, and bad chunking
        payload = rng.choice([b"{not json", b'{"amount": true}', good[:20], rng.randbytes(50)])
        chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(payload), payload)
        bad_chunking = rng.choice([b"zz\r\nabc\r\n0\r\n\r\n", b"5\r\nabc\r\n0\r\n\r\n", b"-1\r\n\r\n",
                                   b"3;ext=1\r\n{}x\r\n0\r\n\r\n"])
        yield head + b"Transfer-Encoding: chunked\r\n\r\n" + rng.choice([chunked, bad_chunking])
        yield head + b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n" + chunked
    for _ in range(15):  # oversized headers
        yield head + b"X-Big: " + b"a" * rng.choice([70_000, 300_000]) + b"\r\n\r\n"
        yield head + b"".join(b"X-%d: v\r\n" % n for n in range(rng.choice([500, 5000]))) + b"\r\n"
    for _ in range(30):  # odd request lines
        yield rng.choice([b"BREW /payments HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                          b"GET /payments/../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                          b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                          b"\x00\x01\x02 / HTTP/1.1\r\n\r\n",
                          b"POST /payments HTTP/9.9\r\nHost: x\r\nConnection: close\r\n\r\n",
                          b"GET /payments/%ff%fe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                          b"GET /health HTTP/1.1\r\nHost: x\r\nBad Header\r\nConnection: close\r\n\r\n"])


def cut_short_cases():
    """Requests that end before their body does: there is nothing whole to answer yet."""
    head = b"POST /payments HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n"
    yield head + b"Content-Length: 500\r\n\r\n" + body_text(list(VALID.items())).encode()
    yield head + b"Transfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\nabc\r\n"
    yield head + b"Transfer-Encoding: chunked\r\n\r\n20\r\n{\"user_id\": "


def read_responses(data):
    """Every (status, headers, body) in a byte stream of HTTP/1.1 responses."""
    responses = []
    while data.startswith((b"HTTP/1.1 ", b"HTTP/1.0 ")):
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        length = int(headers.get("content-length", 0))
        responses.append((int(lines[0].split()[1]), headers, rest[:length]))
        data = rest[length:]
    return responses


def send_raw(port, request):
    """Every response to request, read until the server closes the connection (within 5 s)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        try:
            sock.sendall(request)
            # Nothing more is coming: a server waiting for a body that was promised but never
            # sent sees the end of the stream instead of waiting out its timeout.
            sock.shutdown(socket.SHUT_WR)
        except OSError:  # a broken pipe, a reset, or already not connected
            pass  # the server may refuse and close before it has read everything
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except ConnectionResetError:
            pass  # closed with part of the request unread; what it answered first is in data
    return read_responses(data)


def send_json(port, body, content_type):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        headers = {"Content-Type": content_type} if content_type else {}
        connection.request("POST", "/payments", body=body, headers=headers)
        response = connection.getresponse()
        return [(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())]
    finally:
        connection.close()


def test_1500_malformed_requests_each_get_one_clean_4xx_answer_and_store_nothing(redis, api):
    port = int(api.rsplit(":", 1)[1])
    rng = random.Random(SEED)
    answers = []
    for body, content_type in json_cases(rng):
        answers.append(send_json(port, body, content_type))
    for request in raw_cases(rng):
        answers.append(send_raw(port, request))
    assert len(answers) >= 1500
    unanswered = [n for n, responses in enumerate(answers) if len(responses) != 1]
    assert unanswered == [], f"{len(unanswered)} requests did not get exactly one answer"
    for status, headers, body in (responses[0] for responses in answers):
        assert 400 <= status < 500, (status, body[:200])
        assert b"Traceback" not in body
        if headers["content-type"] == "application/json":  # the app's answer
            assert isinstance(json.loads(body)["error"], str)
        else:  # waitress refused a request that is not valid HTTP before the app saw it
            assert headers["content-type"].startswith("text/plain") and headers.get("connection") == "close"
    for request in cut_short_cases():
        assert [status for status, _, _ in send_raw(port, request)] in ([], [400]), request
    assert http_request("GET", f"{api}/health")[0] == 200
    assert all_keys(redis, "payment:*") == [] and all_keys(redis, "ratelimit:*") == []
    assert all_keys(redis, "payments:*:unfinished") == []
