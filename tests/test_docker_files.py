"""docker-compose.yml and the Dockerfile, checked by construction (no Docker engine needed)."""

import json
import os
import pty
import re
import select
import shutil
import subprocess
import sys
import time

import pytest

from lib.api.dashboard import PAGE_PATH
from lib.devtools.run_local import APP_COMMANDS
from tests.docker_helpers import (
    copied_files,
    copied_python_files,
    proxy_config,
    runtime_python_files,
)
from tests.yaml_subset import load

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read(name):
    with open(os.path.join(ROOT, name)) as file:
        return file.read()


@pytest.fixture(scope="module")
def compose():
    return load(read("docker-compose.yml"))


def healthy(service):
    return {name: {"condition": "service_healthy"} for name in service["depends_on"]} == service["depends_on"]


def test_the_project_is_named_paypoc_whatever_the_folder_is_called(compose):
    assert compose["name"] == "paypoc"


@pytest.mark.skipif(shutil.which("docker") is None, reason="no `docker` command to ask for the project's names")
@pytest.mark.parametrize("override, project", [(None, "paypoc"), ("paypoc-test-1", "paypoc-test-1")])
@pytest.mark.parametrize("profile", [[], ["--profile", "cluster"]])
def test_a_clone_in_any_folder_gets_the_readmes_names_and_compose_project_name_still_wins(tmp_path, override,
                                                                                         project, profile):
    clone = tmp_path / "payment_service_poc"  # not "paypoc": the name may not come from the folder
    clone.mkdir()
    shutil.copy(os.path.join(ROOT, "docker-compose.yml"), clone)
    (clone / ".env").write_text("REDIS_PASSWORD=x\n")
    env = {**os.environ, "COMPOSE_PROJECT_NAME": override} if override else \
        {k: v for k, v in os.environ.items() if k != "COMPOSE_PROJECT_NAME"}
    result = subprocess.run(["docker", "compose", *profile, "config", "--format", "json"], cwd=clone, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    config = json.loads(result.stdout)
    assert config["name"] == project
    volumes = ["beanstalkd-data", "redis-data"]
    if profile:  # the cluster's: one for each node and each beanstalkd
        volumes += [f"{node}-data" for node in CLUSTER_NODES] + ["cluster-beanstalkd-1-data", "cluster-beanstalkd-2-data"]
    assert sorted(volume["name"] for volume in config["volumes"].values()) == sorted(f"{project}_{v}" for v in volumes)


CLUSTER_NODES = [f"cluster-redis-{n}" for n in range(1, 7)]
CLUSTER_SERVICES = {*CLUSTER_NODES, "cluster-create", "cluster-beanstalkd-1", "cluster-beanstalkd-2", "cluster-proxy", "cluster-api",
                    "cluster-worker"}


def test_make_dev_runs_the_six_services_and_the_cluster_profile_holds_the_others(compose):
    services = compose["services"]
    assert {name for name, service in services.items() if "profiles" not in service} == \
        {"proxy", "api", "worker", "redis", "beanstalkd", "beanstalkd-ui"}
    assert {name for name, service in services.items() if service.get("profiles") == ["cluster"]} == CLUSTER_SERVICES
    assert set(services) == {"proxy", "api", "worker", "redis", "beanstalkd", "beanstalkd-ui"} | CLUSTER_SERVICES


def test_api_and_worker_run_the_same_commands_as_make_run(compose):
    for name in ("api", "worker"):
        assert compose["services"][name]["command"] == APP_COMMANDS[name]


def test_the_proxy_publishes_8000_and_the_api_is_reached_through_it_only(compose):
    proxy, api = compose["services"]["proxy"], compose["services"]["api"]
    assert proxy["ports"] == ["8000:8000"] and "ports" not in api
    assert healthy(proxy) and set(proxy["depends_on"]) == {"api"}
    assert any("/health" in part for part in proxy["healthcheck"]["test"])
    assert api["environment"]["HOST"] == "0.0.0.0"  # for the proxy, on the stack's own network
    assert any("/ready" in part for part in api["healthcheck"]["test"])
    assert healthy(api) and set(api["depends_on"]) == {"redis", "beanstalkd"}


def test_the_proxy_passes_whole_requests_to_the_api_and_drops_stalled_ones():
    config = [line.strip() for line in proxy_config()]
    assert config[0] == "user www-data;" and config[-1] == "}"
    assert {"set $api http://api:8000;", "proxy_pass $api;", "client_header_timeout 5s;",
            "client_body_timeout 5s;"} <= set(config)


def test_worker_can_be_scaled(compose):
    worker = compose["services"]["worker"]
    # A fixed container name or a published port would make `--scale worker=N` fail.
    assert "container_name" not in worker and "ports" not in worker
    assert healthy(worker)


def test_redis_keeps_an_append_only_file_on_a_named_volume(compose):
    redis = compose["services"]["redis"]
    assert "redis-server --appendonly yes --save ''" in redis["entrypoint"][-1]
    volume, _, path = redis["volumes"][0].partition(":")
    assert path == "/data" and volume in compose["volumes"]
    assert "redis-cli ping" in " ".join(redis["healthcheck"]["test"])


def test_beanstalkd_keeps_its_binlog_on_a_named_volume(compose):
    beanstalkd = compose["services"]["beanstalkd"]
    command = beanstalkd["command"]
    volume, _, path = beanstalkd["volumes"][0].partition(":")
    assert command[command.index("-b") + 1] == path and volume in compose["volumes"]
    assert beanstalkd["healthcheck"]["test"][0] == "CMD"


def test_the_queue_ui_is_on_8902_and_shows_our_beanstalkd(compose):
    ui = compose["services"]["beanstalkd-ui"]
    assert ui["ports"][0].startswith("8902:") and ui["environment"]["BEANSTALK_SERVERS"] == "beanstalkd:11300"
    # The image's command: sh -c 'BEANSTALK_SERVERS=$BEANSTALKD_PORT_11300_TCP_ADDR:11300 php -S ...'
    assert ui["environment"]["BEANSTALKD_PORT_11300_TCP_ADDR"] == "beanstalkd"


def test_every_build_target_is_a_stage_of_the_dockerfile(compose):
    stages = re.findall(r"^FROM \S+ AS (\S+)$", read("Dockerfile"), re.MULTILINE)
    targets = {s["build"]["target"] for s in compose["services"].values() if "build" in s}
    assert targets == {"app", "beanstalkd", "proxy"} and targets <= set(stages)


def test_the_app_image_is_slim_runs_as_a_non_root_user_and_starts_the_api():
    dockerfile = read("Dockerfile")
    app_stage = dockerfile[dockerfile.index("AS app"):]
    assert re.search(r"^FROM python:3\.11-slim AS app$", dockerfile, re.MULTILINE)
    users = re.findall(r"^USER (\S+)$", app_stage, re.MULTILINE)
    assert users and users[-1] not in ("root", "0")
    assert 'CMD ["python", "paypoc.py"]' in app_stage
    assert dockerfile.rstrip().endswith('CMD ["python", "paypoc.py"]')  # app is the default stage


def test_env_example_lists_every_setting_with_its_default_and_the_stack_password():
    from lib.runtime.config import SETTINGS
    example = dict(line.split("=", 1) for line in read(".env.example").splitlines()
                   if line and not line.startswith("#"))
    assert example == {**{name: default for name, _, default in SETTINGS}, "REDIS_PASSWORD": ""}


def test_redis_requires_the_password_the_api_and_worker_connect_with(compose):
    services = compose["services"]
    required = "${REDIS_PASSWORD:?set REDIS_PASSWORD in .env}"
    assert services["redis"]["environment"]["REDISCLI_AUTH"] == required  # for the healthcheck, and:
    # redis-server reads it from standard input (`-`, last): `$$` leaves the shell to expand it.
    shell, flag, script = services["redis"]["entrypoint"]
    assert (shell, flag) == ("sh", "-c") and " - <<EOF\nrequirepass $$REDISCLI_AUTH\nEOF" in script
    assert "REDIS_PASSWORD" not in script and "command" not in services["redis"]
    for name in ("api", "worker"):
        assert services[name]["environment"]["REDIS_URL"] == f"redis://:{required}@redis:6379/0"


def test_the_cluster_has_six_nodes_that_require_the_password_each_with_a_volume_of_its_own(compose):
    services, required = compose["services"], "${REDIS_PASSWORD:?set REDIS_PASSWORD in .env}"
    volumes = set()
    for name in CLUSTER_NODES:
        node = services[name]
        assert node["image"] == services["redis"]["image"]
        shell, flag, script = node["entrypoint"]
        assert (shell, flag) == ("sh", "-c") and "redis-server --cluster-enabled yes" in script
        # The password on standard input, as the redis service reads it; a replica presents it to its master.
        assert " - <<EOF\nrequirepass $$REDISCLI_AUTH\nmasterauth $$REDISCLI_AUTH\nEOF" in script
        assert node["environment"] == {"REDISCLI_AUTH": required} and "REDIS_PASSWORD" not in script
        assert "redis-cli ping" in " ".join(node["healthcheck"]["test"]) and "ports" not in node
        volume, _, path = node["volumes"][0].partition(":")
        assert path == "/data" and volume in compose["volumes"]
        volumes.add(volume)
    assert len(volumes) == 6


def test_a_one_shot_service_makes_the_cluster_once_every_node_is_healthy(compose):
    create = compose["services"]["cluster-create"]
    assert create["depends_on"] == {node: {"condition": "service_healthy"} for node in CLUSTER_NODES}
    script = create["entrypoint"][2]
    assert "redis-cli --cluster create" in script and "--cluster-replicas 1 --cluster-yes" in script
    assert "cluster meet" in script and "cluster_state:ok" in script  # a cluster made before: met again, waited for
    assert all(node in script for node in CLUSTER_NODES)
    assert "restart" not in create  # it ends once the cluster serves every slot
    assert create["environment"] == {"REDISCLI_AUTH": "${REDIS_PASSWORD:?set REDIS_PASSWORD in .env}"}


def test_the_cluster_api_and_worker_are_the_stacks_own_on_the_cluster_and_both_beanstalkd(compose):
    services, required = compose["services"], "${REDIS_PASSWORD:?set REDIS_PASSWORD in .env}"
    for name in ("api", "worker"):
        service = services[f"cluster-{name}"]
        assert service["command"] == APP_COMMANDS[name] and service["build"] == services[name]["build"]
        assert service["environment"]["REDIS_URL"] == f"redis://:{required}@cluster-redis-1:6379/0"
        assert service["environment"]["REDIS_CLUSTER"] == "yes"
        assert service["environment"]["BEANSTALK_ADDR"] == "cluster-beanstalkd-1:11300,cluster-beanstalkd-2:11300"
        assert service["depends_on"] == {"cluster-create": {"condition": "service_completed_successfully"},
                                         "cluster-beanstalkd-1": {"condition": "service_healthy"},
                                         "cluster-beanstalkd-2": {"condition": "service_healthy"}}
    api, proxy = services["cluster-api"], services["cluster-proxy"]
    # Clients reach it as they reach make dev's: through nginx, which asks Docker's DNS for `api`.
    assert "ports" not in api and api["networks"] == {"default": {"aliases": ["api"]}}
    assert api["environment"]["HOST"] == "0.0.0.0" and api["healthcheck"] == services["api"]["healthcheck"]
    assert proxy["ports"] == services["proxy"]["ports"] == ["8000:8000"] and proxy["build"] == services["proxy"]["build"]
    assert proxy["depends_on"] == {"cluster-api": {"condition": "service_healthy"}}
    for name in ("cluster-beanstalkd-1", "cluster-beanstalkd-2"):
        beanstalkd = services[name]
        assert beanstalkd["command"] == services["beanstalkd"]["command"]
        assert beanstalkd["volumes"][0].partition(":")[0] == f"{name}-data"


def test_every_service_runs_under_an_init_that_passes_sigterm_on(compose):
    assert {name: service.get("init") for name, service in compose["services"].items()} == \
        {name: "true" for name in compose["services"]}


def test_the_app_image_gets_the_modules_the_api_and_worker_import_and_no_dev_tool_or_test():
    assert copied_python_files() == runtime_python_files()


def test_the_app_image_gets_the_page_the_api_serves():
    assert os.path.relpath(PAGE_PATH, ROOT) in copied_files()


def test_every_image_names_its_version_and_only_the_queue_ui_is_latest(compose):
    images = re.findall(r"^FROM (\S+)", read("Dockerfile"), re.MULTILINE)
    images += [service["image"] for service in compose["services"].values() if "image" in service]
    tags = {image: image.rpartition("/")[2].partition(":")[2] for image in images}
    assert "" not in tags.values(), tags  # no image left to mean `latest` by omission
    # The console is published as `latest` only: written out, so a reader sees it is not pinned.
    assert [image for image, tag in tags.items() if tag == "latest"] == ["schickling/beanstalkd-console:latest"]


# A stand-in for `docker compose logs --follow`: it follows until Ctrl-C, then exits 130 as docker compose does.
FOLLOWER = ("import signal, sys, time; signal.signal(signal.SIGINT, lambda *_: sys.exit(130)); "
            "print('following', flush=True); time.sleep(60)")


def test_ctrl_c_on_make_logs_ends_it_quietly():
    pid, terminal = pty.fork()  # a terminal of its own, where Ctrl-C reaches make and what it runs
    if pid == 0:
        os.chdir(ROOT)
        os.execvp("make", ["make", "--no-print-directory", "logs", f"COMPOSE={sys.executable} -c \"{FOLLOWER}\""])
    seen, deadline = b"", time.monotonic() + 30
    while time.monotonic() < deadline:
        if select.select([terminal], [], [], 0.1)[0]:
            try:
                seen += os.read(terminal, 4096)
            except OSError:  # the terminal closed: make has exited
                break
            if b"following\r\n" in seen and b"^C" not in seen:  # the follower's own line, not make's echo
                os.write(terminal, b"\x03")
    os.waitpid(pid, 0)
    assert b"following\r\n" in seen and b"^C" in seen
    assert b"***" not in seen, seen.decode()  # make's "*** [Makefile:..: logs] Error 130" (or "Interrupt")
