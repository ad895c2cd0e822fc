# Three images from one file: `beanstalkd` (the queue) and `proxy` (nginx, in front of the API),
# both Debian's packages, and the default `app` (the API and the worker: the same image, started
# as `python paypoc.py` or `python paypoc_worker.py`).

FROM debian:bookworm-slim AS beanstalkd
# 1.12, Debian 12's: as PID 1 it ignores SIGTERM, so docker-compose.yml runs it under an init.
RUN apt-get update \
    && apt-get install --yes --no-install-recommends "beanstalkd=1.12-*" \
    && rm -rf /var/lib/apt/lists/*
# The package made the unprivileged user `beanstalkd` and its binlog directory /var/lib/beanstalkd.
USER beanstalkd
EXPOSE 11300
CMD ["beanstalkd", "-l", "0.0.0.0", "-p", "11300", "-b", "/var/lib/beanstalkd"]

FROM debian:bookworm-slim AS proxy
# nginx 1.22, Debian 12's. It holds thousands of slow or stalled connections at little cost and
# hands the API only whole requests: waitress keeps every client out once 1000 connections
# stall, and a client can keep that many open (README, Hardening).
RUN apt-get update \
    && apt-get install --yes --no-install-recommends "nginx-light=1.22.*" \
    && rm -rf /var/lib/apt/lists/*
# Its whole configuration. The defence is client_header_timeout: all of a request's headers
# within 5 s, however slowly they trickle, or the connection is closed (and a body may pause
# 5 s at most). The API is found by Docker's DNS at each request (valid 10 s), so a new api
# container is found too; its 502 and 504 become a JSON 503, as every answer of the API is JSON.
RUN printf '%s\n' \
    'user www-data;' \
    'worker_processes auto;' \
    'worker_rlimit_nofile 65536;' \
    'events { worker_connections 16384; }' \
    'http {' \
    '    access_log off;' \
    '    server_tokens off;' \
    '    resolver 127.0.0.11 valid=10s ipv6=off;' \
    '    client_header_timeout 5s;' \
    '    client_body_timeout 5s;' \
    '    client_max_body_size 1m;' \
    '    keepalive_timeout 10s;' \
    '    send_timeout 10s;' \
    '    reset_timedout_connection on;' \
    '    server {' \
    '        listen 8000 backlog=4096;' \
    '        location / {' \
    '            set $api http://api:8000;' \
    '            proxy_pass $api;' \
    '            proxy_read_timeout 10s;' \
    '            error_page 502 504 =503 @api_unavailable;' \
    '        }' \
    '        location @api_unavailable {' \
    '            default_type application/json;' \
    '            add_header Retry-After 1 always;' \
    '            return 503 "{\"error\":\"API unavailable, try again shortly\"}\n";' \
    '        }' \
    '    }' \
    '}' > /etc/nginx/nginx.conf
EXPOSE 8000
CMD ["nginx", "-e", "stderr", "-g", "daemon off;"]

FROM python:3.11-slim AS app
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOST=0.0.0.0
WORKDIR /app
# pytest is for the tests only; the image gets the three runtime packages.
COPY requirements.txt .
RUN grep -v '^pytest' requirements.txt > /tmp/runtime.txt \
    && pip install --no-cache-dir --disable-pip-version-check -r /tmp/runtime.txt \
    && rm /tmp/runtime.txt \
    && useradd --system --uid 10001 --no-create-home paypoc
COPY paypoc.py paypoc_worker.py ./
# .dockerignore keeps the dev tools (lib/devtools) and the tests out of the image.
COPY lib ./lib
USER paypoc
EXPOSE 8000
CMD ["python", "paypoc.py"]
