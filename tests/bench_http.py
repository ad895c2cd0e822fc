"""The HTTP half of `make bench`: wrk against the API and a hello-world app on the same waitress settings."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from types import SimpleNamespace

# wrk runs a Lua script per thread. `done` prints the summary as one JSON line so it can be read back.
WRK_DONE = """
done = function(summary, latency, requests)
  io.write(string.format('{"requests": %d, "seconds": %f, "errors": %d, "non2xx": %d, "p50_ms": %f, "p99_ms": %f}\\n',
    summary.requests, summary.duration / 1e6,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status, latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
"""
# Each request a new user, so the rate limit (raised anyway) never answers instead of the API.
POST_LUA = """
local thread_number, counter = 0, 0
setup = function(thread) thread_number = thread_number + 1; thread:set("me", thread_number) end
request = function()
  counter = counter + 1
  return wrk.format("POST", "/payments", {["Content-Type"] = "application/json"},
    string.format('{"user_id":"bench-%d-%d-%d","amount":19.99,"currency":"USD"}', run, me or 0, counter))
end
"""
GET_LUA = """
local counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", "/payments/" .. ids[(counter % #ids) + 1])
end
"""


def require_wrk():
    """The path of wrk, or exit with one line saying how to install it."""
    path = shutil.which("wrk")
    if path is None:
        sys.exit("wrk is not installed; install it with: apt-get install wrk")
    return path


def hello_app(environ, start_response):
    """The smallest useful WSGI app: what waitress alone costs."""
    body = b'{"status":"OK"}\n'
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def hello_after_round_trip(redis, key):
    """hello_app after the Redis round trip a GET makes (HGETALL of a payment), its reply unused:
    what waitress and that round trip cost, with none of the API's own work."""
    def app(environ, start_response):
        redis.hgetall(key)
        return hello_app(environ, start_response)
    return app


def serve_hello(port, threads, redis_url=None, key=None):
    """Serve hello_app with the API's own server settings (lib.http_server.create_server); with
    redis_url and key, hello_after_round_trip through the API's own Redis client."""
    from lib.http_server import create_server
    from lib.redis_client import open_redis
    app = hello_after_round_trip(open_redis(redis_url), key) if redis_url else hello_app
    create_server(app, SimpleNamespace(host="127.0.0.1", port=port, threads=threads)).run()


def wrk(url, script, seconds, connections=16, threads=2):
    """Run wrk for `seconds` with a Lua script; return its summary as a dict, plus req/s."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
        lua.write(script + WRK_DONE)
    try:
        output = subprocess.run([require_wrk(), f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "-s", lua.name,
                                 url], capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    finally:
        os.unlink(lua.name)
    result = json.loads(output.strip().splitlines()[-1])
    result["rps"] = result["requests"] / result["seconds"]
    return result


def get_script(ids):
    """GET_LUA with the payment ids to ask for."""
    return "ids = {" + ",".join(f'"{i}"' for i in ids) + "}\n" + GET_LUA


def post_script(run):
    """POST_LUA whose users are new in this run too."""
    return f"run = {run}\n" + POST_LUA


def server_usage(pid):
    """(CPU seconds, context switches of all its threads) a process has used so far, from /proc."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
    switches = 0
    for thread in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{thread}/status") as status:
                switches += sum(int(line.split()[1]) for line in status if "ctxt_switches" in line)
        except FileNotFoundError:
            pass  # the thread ended while we looked
    return cpu, switches


def wrk_on(server_pid, url, script, seconds):
    """wrk's summary, plus what the server process spent per request: CPU (µs) and context switches."""
    cpu_before, switches_before = server_usage(server_pid)
    result = wrk(url, script, seconds)
    cpu_after, switches_after = server_usage(server_pid)
    requests = max(result["requests"], 1)
    result["cpu_us_per_request"] = (cpu_after - cpu_before) * 1e6 / requests
    result["switches_per_request"] = (switches_after - switches_before) / requests
    return result
