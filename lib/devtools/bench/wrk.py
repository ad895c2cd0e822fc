"""The HTTP half of `make bench`: wrk against the API, and hello-world apps served the same way."""

import json
import os
import subprocess
import tempfile
from collections.abc import Callable

from lib.devtools.local_servers import require
from lib.devtools.processes import Process
from lib.store.redis_client import RedisClient

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


def hello_app(environ: dict, start_response: Callable) -> list[bytes]:
    """The smallest useful WSGI app: what waitress alone costs."""
    body = b'{"status":"OK"}\n'
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def hello_after_round_trip(redis: RedisClient, key: str) -> Callable:
    """hello_app after the Redis round trip a GET makes (HGETALL of a payment), its reply unused:
    what waitress and that round trip cost, with none of the API's own work."""
    def app(environ, start_response):
        redis.hgetall(key)
        return hello_app(environ, start_response)
    return app


def serve_hello(port: int, threads: int, redis_url: str | None = None, key: str | None = None) -> None:
    """Serve hello_app with the API's own server settings; with redis_url and key,
    hello_after_round_trip through the API's own Redis client."""
    from lib.http.server import create_server, listen
    from lib.store.redis_client import open_redis
    app = hello_after_round_trip(open_redis(redis_url), key) if redis_url else hello_app
    create_server(app, [listen("127.0.0.1", port)], threads).run()


def run_wrk(url: str, script: str, seconds: float, connections: int = 16, threads: int = 2) -> dict:
    """Run wrk for `seconds` with a Lua script; return its summary as a dict, plus req/s."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
        lua.write(script + WRK_DONE)
    try:
        output = subprocess.run([require("wrk"), f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "-s", lua.name,
                                 url], capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    finally:
        os.unlink(lua.name)
    result = json.loads(output.strip().splitlines()[-1])
    result["rps"] = result["requests"] / result["seconds"]
    return result


def get_script(ids: list[str]) -> str:
    """GET_LUA with the payment ids to ask for."""
    return "ids = {" + ",".join(f'"{i}"' for i in ids) + "}\n" + GET_LUA


def post_script(run: int) -> str:
    """POST_LUA whose users are new in this run too."""
    return f"run = {run}\n" + POST_LUA


def measure(server: Process, url: str, script: str, seconds: float) -> dict:
    """wrk's summary, plus what the server process spent per request: CPU (µs) and context switches."""
    cpu, switches = server.cpu_seconds(), server.context_switches()
    result = run_wrk(url, script, seconds)
    requests = max(result["requests"], 1)
    result["cpu_us_per_request"] = (server.cpu_seconds() - cpu) * 1e6 / requests
    result["switches_per_request"] = (server.context_switches() - switches) / requests
    return result
