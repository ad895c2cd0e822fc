# paypoc: `make test` runs the tests, `make run` runs the stack locally, `make dev` runs it in Docker
# (`make run-cluster` and `make dev-cluster`: the same on a Redis Cluster).
# `make test PYTHON3=python3.13 VENV=.venv-3.13` runs the tests under another Python.
PYTHON3 ?= python3
VENV ?= .venv
PYTHON := $(VENV)/bin/python
COMPOSE := docker compose

.PHONY: test bench run run-cluster demo screenshot dev dev-cluster logs down clean

# The virtual environment is rebuilt whenever requirements.txt changes.
$(VENV)/installed: requirements.txt
	$(PYTHON3) -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

test: $(VENV)/installed
	$(PYTHON) -m pytest -p no:cacheprovider -rs $(PYTEST_ARGS)

# Not part of `make test`: about a quarter of an hour of load. BENCH_ARGS="--preload 1000000" adds the large-store run.
bench: $(VENV)/installed
	$(PYTHON) -m lib.devtools.bench $(BENCH_ARGS)

run: $(VENV)/installed
	$(PYTHON) -m lib.devtools.run_local

# The same with a Redis Cluster of three masters and three replicas (ports 7000-7005, data in
# .run/cluster, made the first time and found again after) and two beanstalkd (11300, 11301).
run-cluster: $(VENV)/installed
	$(PYTHON) -m lib.devtools.run_local --cluster

# docker compose reads .env; a first run starts from the documented defaults and a random
# Redis password (URL-safe characters, so it can stand in REDIS_URL as it is).
.env:
	sed "s/^REDIS_PASSWORD=.*/REDIS_PASSWORD=$$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')/" \
		.env.example > .env

# The original's simulation steps against a running stack (make run or make dev), narrated.
demo: $(VENV)/installed
	$(PYTHON) -m lib.devtools.demo

# docs/dashboard.png: the page at / after the rate-limit burst, in headless Chromium, from a stack of
# its own on free ports (it needs chromium: apt-get install chromium).
screenshot: $(VENV)/installed
	$(PYTHON) -m lib.devtools.screenshot

# --wait returns once every service is running and every healthcheck passes (or fails if one
# does not), so the addresses printed after it answer.
dev: .env
	$(COMPOSE) up --build --wait
	@echo "API on http://localhost:8000, beanstalkd UI on http://localhost:8902 (make logs, make down)"

# The same API and worker on a Redis Cluster and two beanstalkd: the compose file's profile
# `cluster`. Naming these services starts them and what they depend on, and nothing else.
dev-cluster: .env
	$(COMPOSE) --profile cluster up --build --wait cluster-proxy cluster-worker
	@echo "API on http://localhost:8000, on a Redis Cluster of three masters and three replicas" \
		"and two beanstalkd (make logs, make down)"

# Ctrl-C is how one stops following: the shell's trap makes it a quiet exit, where make would
# report docker compose's status 130 as an error. With the profile `cluster`, logs and down
# reach the services of either stack.
logs:
	@trap 'exit 0' INT; $(COMPOSE) --profile cluster logs --follow

down:
	$(COMPOSE) --profile cluster down

clean:
	rm -rf .venv .venv-* .run
