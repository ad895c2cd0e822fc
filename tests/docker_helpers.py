"""Helpers for the Docker tests: what the app image should hold, and a Compose stack in a clone."""

import collections
import fnmatch
import json
import modulefinder
import os
import re
import shutil
import socket
import subprocess
import uuid

# How a container stopped: its service, the signals sent to it, its exit code, seconds from the first signal.
Stop = collections.namedtuple("Stop", "service signals exit_code seconds")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENTRY_POINTS = ("paypoc.py", "paypoc_worker.py")
PUBLISHED_PORTS = (8000, 8902)  # the API and the beanstalkd UI, as docker-compose.yml publishes them


def runtime_python_files(root=ROOT):
    """The project's .py files that `python paypoc.py` and `python paypoc_worker.py` import, and those two."""
    # Searching the project alone: imports of the standard library and of packages are not followed.
    finder = modulefinder.ModuleFinder(path=[root])
    for script in ENTRY_POINTS:
        finder.run_script(os.path.join(root, script))
    imported = {os.path.relpath(module.__file__, root) for name, module in finder.modules.items()
                if module.__file__ and name != "__main__"}
    return imported | set(ENTRY_POINTS)


def ignored(path, patterns):
    """Whether a .dockerignore pattern leaves path (relative, `/`-separated) out of the build context.

    As Docker does, a pattern may match the path or any directory above it, and a leading `**/`
    also matches at the top. The patterns in this project's .dockerignore need no more than that.
    """
    parts = path.split("/")
    candidates = ["/".join(parts[:end]) for end in range(1, len(parts) + 1)]
    return any(fnmatch.fnmatchcase(candidate, pattern) or
               (pattern.startswith("**/") and fnmatch.fnmatchcase(candidate, pattern[3:]))
               for pattern in patterns for candidate in candidates)


def proxy_config(root=ROOT):
    """The nginx configuration the Dockerfile's proxy stage writes, as its lines."""
    with open(os.path.join(root, "Dockerfile")) as file:
        stage = file.read().split(" AS proxy", 1)[1].split("\nFROM ", 1)[0]
    written = stage[stage.index("RUN printf '%s\\n'"):]
    return re.findall(r"^ +'(.*)' (?:\\|> /etc/nginx/nginx\.conf)$", written, re.MULTILINE)


def copied_files(root=ROOT):
    """The files the Dockerfile's app stage copies from the build context that .dockerignore leaves."""
    with open(os.path.join(root, ".dockerignore")) as file:
        patterns = [line.strip() for line in file if line.strip() and not line.startswith("#")]
    with open(os.path.join(root, "Dockerfile")) as file:
        dockerfile = file.read()
    app_stage = dockerfile[dockerfile.index(" AS app"):]
    copied = set()
    for line in re.findall(r"^COPY (.+)$", app_stage, re.MULTILINE):
        for source in line.split()[:-1]:  # the last word is the destination
            if os.path.isfile(os.path.join(root, source)):
                copied.add(source)
            for folder, _, names in os.walk(os.path.join(root, source)):
                copied.update(os.path.relpath(os.path.join(folder, name), root) for name in names)
    return {path for path in copied if not ignored(path, patterns)}


def copied_python_files(root=ROOT):
    """The .py files the Dockerfile's app stage copies from the build context that .dockerignore leaves."""
    return {path for path in copied_files(root) if path.endswith(".py")}


def engine_problem():
    """Why the Compose stack cannot run here (no engine, a port taken...), or None when it can."""
    if shutil.which("docker") is None:
        return "no `docker` command on this machine"
    info = subprocess.run(["docker", "info"], capture_output=True, text=True)
    if info.returncode != 0:
        first_line = (info.stderr.strip().splitlines() or ["no output"])[-1]
        return f"no Docker engine answers (`docker info`: {first_line})"
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode != 0:
        return "no Docker Compose v2 (`docker compose version` failed)"
    if subprocess.run(["git", "-C", ROOT, "rev-parse", "HEAD"], capture_output=True).returncode != 0:
        return f"{ROOT} is not a git checkout with a commit to clone"
    for port in PUBLISHED_PORTS:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a closed connection's TIME_WAIT is no owner
            try:
                probe.bind(("0.0.0.0", port))
            except OSError:
                return f"port {port} is taken (`make dev` publishes it): stop what listens there"
    return None


class ComposeStack:
    """A clone of this repository's HEAD in which `make` and `docker compose` run as a project of its own."""

    def __init__(self, directory, profile=None):
        self.dir = str(directory)
        self.project = f"paypoc-test-{uuid.uuid4().hex[:8]}"
        # COMPOSE_PROJECT_NAME keeps its containers, volumes and images apart from a developer's `make dev`.
        self.env = {**os.environ, "COMPOSE_PROJECT_NAME": self.project}
        self.profile_args = ["--profile", profile] if profile else []  # the compose file's profile it runs
        self.make_dev_output = None

    def clone(self):
        """Clone the committed HEAD of the repository the tests run in."""
        head = subprocess.run(["git", "-C", ROOT, "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
        subprocess.run(["git", "clone", "--quiet", "--no-checkout", ROOT, self.dir], check=True)
        subprocess.run(["git", "-C", self.dir, "checkout", "--quiet", head], check=True)

    def make_dev(self, target="dev"):
        """`make dev` (or `make dev-cluster`), as a user types it; its output is kept as make_dev_output."""
        result = self.run("make", target)
        assert result.returncode == 0, f"make {target} failed:\n{result.stdout}{result.stderr}"
        self.make_dev_output = result.stdout

    def run(self, *command, timeout=600):
        """Run command in the clone; the CompletedProcess has stdout and stderr as text."""
        return subprocess.run(command, cwd=self.dir, env=self.env, capture_output=True, text=True, timeout=timeout)

    def compose(self, *args, timeout=120):
        """`docker compose ARGS` in the clone; raise with its output when it fails."""
        result = self.run("docker", "compose", *self.profile_args, *args, timeout=timeout)
        assert result.returncode == 0, f"docker compose {' '.join(args)} failed:\n{result.stdout}{result.stderr}"
        return result.stdout

    def containers(self, service):
        """The ids of the service's containers, running or not."""
        return self.compose("ps", "--all", "--quiet", service).split()

    def inspect(self, service):
        """`docker inspect` of each of the service's containers."""
        ids = self.containers(service)
        return json.loads(subprocess.run(["docker", "inspect", *ids], capture_output=True, text=True,
                                         check=True).stdout) if ids else []

    def health(self, service):
        """The health status of each of the service's containers: "healthy", "starting", ..."""
        return [container["State"]["Health"]["Status"] for container in self.inspect(service)]

    def redis_password(self):
        """The REDIS_PASSWORD `make dev` wrote into the clone's .env."""
        with open(os.path.join(self.dir, ".env")) as env_file:
            return next(line.split("=", 1)[1].strip() for line in env_file if line.startswith("REDIS_PASSWORD="))

    def stops(self, since, until):
        """How each container of the project stopped between two Unix times, by container name,
        from the engine's events: the signals it was sent, its exit code, and how long it took."""
        result = subprocess.run(["docker", "events", "--since", f"{since:.3f}", "--until", f"{until:.3f}",
                                 "--filter", "type=container", "--filter",
                                 f"label=com.docker.compose.project={self.project}", "--format", "{{json .}}"],
                                capture_output=True, text=True, check=True, timeout=30)
        signals, stops = {}, {}
        for event in map(json.loads, result.stdout.splitlines()):
            attributes = event["Actor"]["Attributes"]
            sent = signals.setdefault(attributes["name"], [])
            if event["Action"] == "kill":
                sent.append((attributes["signal"], event["timeNano"]))
            elif event["Action"] == "die" and sent:
                stops[attributes["name"]] = Stop(attributes["com.docker.compose.service"], [s for s, _ in sent],
                                                 int(attributes["exitCode"]), (event["timeNano"] - sent[0][1]) / 1e9)
        return stops

    def remove(self):
        """Remove whatever the project still has, of either stack: containers, network, volumes and the
        images it built."""
        self.run("docker", "compose", "--profile", "cluster", "down", "--volumes", "--rmi", "local",
                 "--remove-orphans", timeout=180)
