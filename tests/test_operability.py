"""GET /queue, GET /metrics and GET /payments?user_id=: the running system explains itself."""

import re
import signal
import time

import pytest

from lib.api.durations import RequestDurations
from lib.api.metrics import escape_label, render
from lib.devtools.processes import http, wait_for
from lib.store import keys
from tests.conftest import WALKTHROUGH_BODY, counter, on_both_topologies, status_counts


def post_for(client, user, count, **headers):
    return [client.post_payment({"user_id": user, "amount": n + 1, "currency": "EUR"}, headers=headers)[2]
            for n in range(count)]


# -- GET /payments?user_id= ------------------------------------------------------------------

@on_both_topologies
def test_a_users_payments_come_newest_first_a_page_at_a_time(make_client):
    client = make_client(rate_limit=100)
    ids = [payment["data"]["id"] for payment in post_for(client, "lister", 25)]
    post_for(client, "someone-else", 3)
    seen, cursor, pages = [], "", 0
    while True:
        status, _, page = client.request("GET", "/payments", headers={"QUERY_STRING": f"user_id=lister&limit=10{cursor}"})
        assert status == 200 and len(page["data"]) <= 10
        seen += [payment["id"] for payment in page["data"]]
        pages += 1
        if not page["has_more"]:
            break
        cursor = f"&starting_after={page['data'][-1]['id']}"
    assert seen == ids[::-1] and pages == 3
    assert all(payment["user_id"] == "lister" for payment in page["data"])


def test_the_default_page_is_ten(make_client):
    client = make_client(rate_limit=100)
    post_for(client, "u", 12)
    page = client.request("GET", "/payments", headers={"QUERY_STRING": "user_id=u"})[2]
    assert len(page["data"]) == 10 and page["has_more"] is True


def test_a_user_with_no_payments_gets_an_empty_page(client):
    assert client.request("GET", "/payments", headers={"QUERY_STRING": "user_id=nobody"})[::2] == \
        (200, {"data": [], "has_more": False})


@pytest.mark.parametrize("query, named", [
    ("", "user_id"), ("user_id=", "user_id"), ("user_id=a%20b", "user_id"), ("user_id=u&limit=0", "limit"),
    ("user_id=u&limit=101", "limit"), ("user_id=u&limit=ten", "limit"), ("user_id=u&starting_after=x", "starting_after"),
    ("user_id=u&user_id=v", "user_id"), ("user_id=u&colour=red", "colour"),
])
def test_bad_list_parameters_are_400_naming_the_parameter(client, query, named):
    status, _, body = client.request("GET", "/payments", headers={"QUERY_STRING": query})
    assert status == 400 and named in body["error"]


@pytest.mark.parametrize("spelling", ["user_id", "user_Id", "userId", "USERID"])
def test_the_list_takes_user_id_under_every_spelling_the_post_body_takes(client, spelling):
    posted = client.post_payment({"user_Id": "user_123", "amount": 1500, "currency": "XAF"})[2]["data"]["id"]
    status, _, page = client.request("GET", "/payments", headers={"QUERY_STRING": f"{spelling}=user_123"})
    assert status == 200 and [payment["id"] for payment in page["data"]] == [posted]


@pytest.mark.parametrize("query, message", [
    ("user_id=a&userId=b", "user_id is given more than once (user_id, userId)"),
    ("u%C5%BFer_id=a", "unknown parameter 'uſer_id'"),  # "uſer_id".upper() is "USER_ID": a look-alike
])
def test_the_list_refuses_user_id_twice_and_look_alike_spellings_as_the_post_does(client, query, message):
    status, _, body = client.request("GET", "/payments", headers={"QUERY_STRING": query})
    assert status == 400 and message in body["error"]


def test_a_cursor_from_another_users_list_is_refused(client):
    other = post_for(client, "alice", 1)[0]["data"]["id"]
    status, _, body = client.request("GET", "/payments", headers={"QUERY_STRING": f"user_id=bob&starting_after={other}"})
    assert status == 400 and "starting_after" in body["error"]


# -- GET /metrics ------------------------------------------------------------------------------

SAMPLE = re.compile(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*",?)*\})? (\S+)')


def parse_exposition(text):
    """Check the text format 0.0.4 rules; return {family: [(name, labels text, value)]}."""
    assert text.endswith("\n")
    families, declared, current = {}, {}, None
    for line in text.splitlines():
        if line.startswith("# HELP "):
            current = line.split()[2]
            assert current not in families, f"{current} declared twice"
            families[current] = []
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            assert name == current and kind in ("counter", "gauge", "histogram")
            declared[name] = kind
        else:
            match = SAMPLE.fullmatch(line)
            assert match, f"not a sample line: {line!r}"
            name, labels, value = match.group(1), match.group(2) or "", float(match.group(3))
            family = re.sub(r"_(bucket|sum|count)$", "", name) if declared.get(current) == "histogram" else name
            assert family == current and current in declared, f"{name} before its HELP and TYPE"
            families[current].append((name, labels, value))
    return families, declared


def check_histograms(families, declared):
    for family, kind in declared.items():
        if kind != "histogram":
            continue
        series = {}
        for name, labels, value in families[family]:
            key = re.sub(r',?le="[^"]*"', "", labels)
            series.setdefault(key, {"buckets": []})
            if name.endswith("_bucket"):
                series[key]["buckets"].append((re.search(r'le="([^"]*)"', labels).group(1), value))
            else:
                series[key][name.rsplit("_", 1)[1]] = value
        for key, parts in series.items():
            edges = [edge for edge, _ in parts["buckets"]]
            counts = [count for _, count in parts["buckets"]]
            assert edges[-1] == "+Inf" and counts == sorted(counts), f"{key}: buckets not cumulative"
            assert [float(e) for e in edges[:-1]] == sorted(float(e) for e in edges[:-1])
            assert parts["count"] == counts[-1] and parts["sum"] >= 0


@on_both_topologies
def test_metrics_follow_the_text_format_and_count_what_happened(make_client, redis, run_worker):
    api_one, api_two = make_client(rate_limit=2), make_client(rate_limit=2)  # two replicas, one Redis
    api_one.post_payment(WALKTHROUGH_BODY, headers={"HTTP_IDEMPOTENCY_KEY": "k1"})
    api_one.post_payment(WALKTHROUGH_BODY, headers={"HTTP_IDEMPOTENCY_KEY": "k1"})  # a replay
    api_two.post_payment(WALKTHROUGH_BODY)
    api_two.post_payment(WALKTHROUGH_BODY)  # the third for user_123: rate-limited
    api_one.request("GET", "/nowhere")
    run_worker()
    assert wait_for(lambda: counter(redis, "payments_completed") == 2)
    status, headers, text = api_two.request_text("GET", "/metrics")
    assert status == 200 and headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    families, declared = parse_exposition(text)
    check_histograms(families, declared)
    value = {(name + labels): v for samples in families.values() for name, labels, v in samples}
    assert value["paypoc_payments_created_total"] == 2 and value["paypoc_rate_limited_total"] == 1
    assert value["paypoc_idempotent_replays_total"] == 1 and value["paypoc_payments_completed_total"] == 2
    assert value['paypoc_payments{status="COMPLETED"}'] == 2 and value['paypoc_payments{status="PENDING"}'] == 0
    assert value['paypoc_queue_jobs{state="ready"}'] == 0
    # This process's histogram: api_two answered two POSTs before /metrics.
    assert value['paypoc_http_request_duration_seconds_count{method="POST",route="/payments"}'] == 2


def test_failures_and_retries_are_counted(client, redis, run_worker):
    client.post_payment(WALKTHROUGH_BODY)
    run_worker(failure_rate=1, max_attempts=2, retry_delay=0)
    assert wait_for(lambda: counter(redis, "payments_failed") == 1)
    assert counter(redis, "payments_retried") == 1
    assert status_counts(redis) == {"PENDING": 0, "PROCESSING": 0, "COMPLETED": 0, "FAILED": 1}


@pytest.mark.filterwarnings("ignore:Unknown REQUEST_METHOD")  # wsgiref's validator; invented on purpose
def test_methods_no_route_knows_share_one_label_in_the_histogram(client):
    for invented in ("FOO", "BAR", "PURGE"):
        assert client.request(invented, "/payments")[0] == 405
    assert client.request_raw("HEAD", "/health")[0] == 200
    _, _, text = client.request_text("GET", "/metrics")
    counts = {labels: value for name, labels, value in parse_exposition(text)[0]["paypoc_http_request_duration_seconds"]
              if name.endswith("_count")}
    assert counts == {'{method="other",route="unmatched"}': 3, '{method="HEAD",route="/health"}': 1}


def test_label_values_are_escaped():
    durations = RequestDurations(['GE"T'], ["/a\\b\nc"])
    durations.observe('GE"T', "/a\\b\nc", 0.003)
    text = render({}, {}, {"b:11300": {"ready": 1, "reserved": 0, "delayed": 0, "buried": 0}}, durations)
    assert escape_label('a"b\\c\nd') == 'a\\"b\\\\c\\nd'
    assert 'method="GE\\"T",route="/a\\\\b\\nc"' in text
    check_histograms(*parse_exposition(text))


# -- GET /queue --------------------------------------------------------------------------------

@on_both_topologies
def test_queue_counts_move_as_jobs_come_and_go(make_client, tubes, env):
    client = make_client(rate_limit=100)
    assert client.request("GET", "/queue")[2]["jobs"] == \
        {"ready": 0, "reserved": 0, "delayed": 0, "buried": 0, "total_put": 0}
    for n in range(6):
        post_for(client, f"u{n}", 1)  # six users: on two beanstalkd, most likely some jobs on each
    holder = next(tube for tube in tubes if tube.stats_tube(tube.using())["current-jobs-ready"])
    holder.bury(holder.reserve(timeout=0))
    body = client.request("GET", "/queue")[2]
    assert body["jobs"] == {"ready": 5, "reserved": 0, "delayed": 0, "buried": 1, "total_put": 6}
    assert body["tube"] == env["BEANSTALK_TUBE"]
    # Each server's own counts, which add up to the totals above.
    per_server = [tube.stats_tube(tube.using())["current-jobs-ready"] for tube in tubes]
    assert [counts["ready"] for counts in body["servers"].values()] == per_server and sum(per_server) == 5


def test_every_live_worker_process_shows_and_a_dead_one_goes(api, launch, redis):
    workers = [launch("paypoc_worker.py", max_workers=n) for n in (2, 3)]
    assert wait_for(lambda: len(http("GET", f"{api}/queue")[2]["workers"]) == 2)
    listed = http("GET", f"{api}/queue")[2]["workers"]
    pids = [worker.children() for worker in workers]  # one worker process each (WORKER_PROCESSES=1)
    assert sorted(w["threads"] for w in listed) == [2, 3] and sorted(w["pid"] for w in listed) == sorted(sum(pids, []))
    assert all(set(w) == {"id", "host", "pid", "threads", "jobs_done", "settings", "started_at", "last_seen"}
               for w in listed)
    workers[0].stop(signal.SIGTERM)  # a clean stop removes its heartbeat at once
    assert [w["pid"] for w in http("GET", f"{api}/queue")[2]["workers"]] == pids[1]
    workers[1].kill_all()  # a killed one expires; let its time run out
    killed = [w["id"] for w in listed if w["pid"] in pids[1]][0]
    redis.pexpire(keys.worker(killed), 1)
    assert wait_for(lambda: http("GET", f"{api}/queue")[2]["workers"] == [])
    assert redis.smembers(keys.workers()) == set()


def test_queue_summary_and_metrics_answer_503_fast_when_beanstalkd_is_down(make_client):
    client = make_client(beanstalk_addr="127.0.0.1:1")
    for path in ("/queue", "/summary", "/metrics"):
        started = time.monotonic()
        status, _, body = client.request("GET", path)
        assert status == 503 and "unavailable" in body["error"] and time.monotonic() - started < 2
