# Two images from one file: `beanstalkd` (the queue, Debian's package) and the default `app`
# (the API and the worker: the same image, started as `python paypoc.py` or `python paypoc_worker.py`).

FROM debian:bookworm-slim AS beanstalkd
# 1.12, Debian 12's: as PID 1 it ignores SIGTERM, so docker-compose.yml runs it under an init.
RUN apt-get update \
    && apt-get install --yes --no-install-recommends "beanstalkd=1.12-*" \
    && rm -rf /var/lib/apt/lists/*
# The package made the unprivileged user `beanstalkd` and its binlog directory /var/lib/beanstalkd.
USER beanstalkd
EXPOSE 11300
CMD ["beanstalkd", "-l", "0.0.0.0", "-p", "11300", "-b", "/var/lib/beanstalkd"]

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
