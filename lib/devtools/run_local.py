"""`make run`: Redis, beanstalkd, the API and the worker as local processes, stopped together."""

import os
import signal
import subprocess
import sys
import threading
from urllib.parse import quote

from lib.devtools.local_servers import local_beanstalkd, local_redis, port_taken
from lib.runtime.config import load_config_or_exit

REDIS_PORT, BEANSTALK_PORT = 6379, 11300
# The same commands the api and worker containers run (see docker-compose.yml).
APP_COMMANDS = {"api": ["python", "paypoc.py"], "worker": ["python", "paypoc_worker.py"]}


def read_env_file(path: str, environ: dict) -> dict:
    """environ plus the KEY=value lines of path; a variable already set in environ wins."""
    merged = dict(environ)
    if os.path.exists(path):
        with open(path) as env_file:
            for line in env_file:
                line = line.strip()
                if line and not line.startswith("#") and "=" in line:
                    name, value = line.split("=", 1)
                    merged.setdefault(name.strip(), value.strip())
    return merged


def taken_ports_advice(host: str, api_port: int) -> str | None:
    """What to do when a port make run needs is taken (make dev still up, another make run...),
    or None when every port is free."""
    wanted = [("the API", host, api_port), ("Redis", "127.0.0.1", REDIS_PORT),
              ("beanstalkd", "127.0.0.1", BEANSTALK_PORT)]
    taken = [f"{port} ({name})" for name, address, port in wanted if port_taken(address, port)]
    if not taken:
        return None
    advice = [f"make run started nothing: already in use: port {', port '.join(taken)}.",
              "  If make dev is up, stop it with: make down (another make run: Ctrl-C in its terminal)."]
    if port_taken(host, api_port):
        advice.append(f"  Or run the API on another port: PORT={api_port + 1} make run")
    return "\n".join(advice)


def _relay(name, stream):
    """Copy a child's output to ours, each line prefixed with its name as docker compose does."""
    for line in iter(stream.readline, b""):
        sys.stdout.write(f"{name:<7}| {line.decode(errors='replace')}")
        sys.stdout.flush()


def main(data_dir: str = ".run") -> int:
    """Start everything, wait for Ctrl-C (or SIGTERM, or any process dying), then stop everything."""
    env = read_env_file(".env", os.environ)
    # REDIS_PASSWORD (set by `make dev` in .env) protects this Redis too, as it does the container's.
    password = env.get("REDIS_PASSWORD", "")
    credentials = f":{quote(password, safe='')}@" if password else ""
    env.update(REDIS_URL=f"redis://{credentials}localhost:{REDIS_PORT}/0",
               BEANSTALK_ADDR=f"localhost:{BEANSTALK_PORT}", PYTHONUNBUFFERED="1")
    config = load_config_or_exit(env)  # a bad setting stops make run here, before anything starts
    if advice := taken_ports_advice(config.host, config.port):
        print(advice, file=sys.stderr)
        return 1
    os.makedirs(f"{data_dir}/redis", exist_ok=True)
    os.makedirs(f"{data_dir}/beanstalkd", exist_ok=True)
    finished = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: finished.set())
    signal.signal(signal.SIGINT, lambda *_: finished.set())
    servers = [
        local_redis(REDIS_PORT, os.path.abspath(f"{data_dir}/redis"), f"{data_dir}/redis.log", password),
        local_beanstalkd(BEANSTALK_PORT, f"{data_dir}/beanstalkd.log", f"{data_dir}/beanstalkd"),
    ]
    apps = {}
    try:
        for server in servers:
            print(f"starting {server.kind} on port {server.port} (log: {server.log_path})", flush=True)
            server.start()
        for name, command in APP_COMMANDS.items():
            # A session of its own: Ctrl-C reaches only this supervisor, which then stops each
            # process once, in order, so the worker finishes its jobs in hand.
            apps[name] = subprocess.Popen([sys.executable] + command[1:], env=env, stdout=subprocess.PIPE,
                                          stderr=subprocess.STDOUT, start_new_session=True)
            threading.Thread(target=_relay, args=(name, apps[name].stdout), daemon=True).start()
        print(f"API and its page on http://localhost:{config.port} ({config.api_processes} processes of "
              f"{config.threads} threads), worker ({config.worker_processes} process(es) of {config.max_workers} "
              "thread(s)) - press Ctrl-C to stop everything", flush=True)
        while not finished.wait(0.5):
            dead = [name for name, process in apps.items() if process.poll() is not None]
            if dead:
                print(f"{', '.join(dead)} exited; stopping everything", flush=True)
                return 1
        return 0
    except RuntimeError as error:  # a server that did not start: say why, stop the rest
        print(f"{error} (is something else using the port?)", file=sys.stderr)
        return 1
    finally:
        for name, process in apps.items():
            if process.poll() is None:
                process.terminate()
        for process in apps.values():
            process.wait()
        for server in reversed(servers):
            server.stop()
        print("stopped", flush=True)


if __name__ == "__main__":
    sys.exit(main())
