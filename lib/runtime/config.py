"""Configuration: one table of environment variables, parsed and checked once at start-up."""

import logging
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass

# Not a setting: how long the API and the worker wait on Redis or beanstalkd before giving up.
# GET /ready asks both in turn and must answer within 2 s even when both are stalled.
DEPENDENCY_TIMEOUT = 0.8  # seconds


class ConfigError(Exception):
    """A variable has a value the service cannot run with."""


def is_digits(text: str) -> bool:
    """True for plain ASCII digits only: int() would also take "１２", " 12" and "1_2"."""
    return re.fullmatch(r"[0-9]+", text) is not None


def mask_password(text: str) -> str:
    """A URL with its password replaced by ***, for log lines and errors: redis://:***@redis:6379/0."""
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", text)


def _integer(low, high):
    """A parser for a whole number from low to high."""

    def parse(text):
        if not (is_digits(text) and len(text) <= 12) or not low <= int(text) <= high:
            raise ValueError(f"a whole number from {low} to {high}")
        return int(text)

    return parse


# Plain ASCII digits only: float() would also take "３", "1_0" and "inf".
_DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?")


def _seconds(low, high):
    """A parser for a duration in seconds from low to high (fractions allowed)."""

    def parse(text):
        if not _DECIMAL.fullmatch(text) or not low <= float(text) <= high:
            raise ValueError(f"a number of seconds from {low} to {high}, for example 3 or 0.5")
        return float(text)

    return parse


def _probability(text):
    """A parser for a probability: a number from 0 to 1."""
    if not _DECIMAL.fullmatch(text) or not 0 <= float(text) <= 1:
        raise ValueError("a probability from 0 to 1, for example 0.2")
    return float(text)


def _host_ports(text):
    """'host:port[,host:port...]' -> ((host, port), ...), the beanstalkd servers to spread jobs over."""
    addresses = []
    for address in text.split(","):
        host, _, port = address.strip().rpartition(":")
        if not host or not is_digits(port) or not 1 <= int(port) <= 65535:
            raise ValueError("host:port, or several separated by commas, for example localhost:11300")
        addresses.append((host, int(port)))
    return tuple(addresses)


def _redis_url(text):
    if not re.match(r"(redis|rediss|unix)://", text):
        raise ValueError("a redis:// rediss:// or unix:// URL, for example redis://localhost:6379/0")
    return text


def _tube(text):
    # beanstalkd's own rule for names: up to 200 bytes of these characters, not starting with '-'
    if not re.fullmatch(r"[A-Za-z0-9+/;.$_()][A-Za-z0-9\-+/;.$_()]{0,199}", text):
        raise ValueError("a beanstalkd tube name: letters, digits and -+/;.$_() (not starting with -)")
    return text


def _host(text):
    if not text or any(c.isspace() for c in text):
        raise ValueError("a host name or address, for example 127.0.0.1")
    return text


def available_cores() -> int:
    """How many cores this process may run on (a container's cpuset counts, a CPU quota does not)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _processes(text):
    """A number of processes from 1 to 256; empty means one per core this process may run on."""
    if text == "":
        return available_cores()
    return _integer(1, 256)(text)


def _flag(text):
    if text.lower() not in ("yes", "no", "true", "false", "1", "0") or not text.isascii():
        raise ValueError("yes or no")
    return text.lower() in ("yes", "true", "1")


def _log_level(text):
    level = text.upper() if text.isascii() else ""  # "ınfo".upper() is "INFO"
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ValueError("one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
    return getattr(logging, level)


# (environment variable, parser, default): the whole configuration surface of both processes.
SETTINGS = [
    ("HOST", _host, "127.0.0.1"),
    ("PORT", _integer(1, 65535), "8000"),
    ("THREADS", _integer(1, 1000), "8"),
    ("REDIS_URL", _redis_url, "redis://localhost:6379/0"),
    ("REDIS_CLUSTER", _flag, "no"),
    ("REDIS_WAIT_REPLICAS", _integer(0, 5), "0"),
    ("BEANSTALK_ADDR", _host_ports, "localhost:11300"),
    ("BEANSTALK_TUBE", _tube, "payment_jobs"),
    ("RATE_LIMIT", _integer(1, 1_000_000), "5"),
    ("RATE_LIMIT_WINDOW", _integer(1, 86_400), "60"),
    ("MAX_WORKERS", _integer(1, 1000), "1"),
    ("PROCESSING_DELAY", _seconds(0, 3600), "3"),
    ("LOG_LEVEL", _log_level, "INFO"),
    ("MAX_ATTEMPTS", _integer(1, 100), "3"),
    ("RETRY_DELAY", _seconds(0, 3600), "1"),
    ("FAILURE_RATE", _probability, "0"),
    ("STALE_AFTER", _seconds(1, 86400), "60"),
    ("API_PROCESSES", _processes, ""),
    ("API_PIN_CPUS", _flag, "yes"),
    ("WORKER_PROCESSES", _processes, "1"),
]


@dataclass(frozen=True)
class Config:
    """Parsed settings; attribute names are the variable names in lower case."""

    host: str
    port: int
    threads: int
    redis_url: str
    redis_cluster: bool
    redis_wait_replicas: int
    beanstalk_addr: tuple[tuple[str, int], ...]  # one (host, port) per beanstalkd
    beanstalk_tube: str
    rate_limit: int
    rate_limit_window: int
    max_workers: int
    processing_delay: float
    log_level: int
    max_attempts: int
    retry_delay: float
    failure_rate: float
    stale_after: float
    api_processes: int
    api_pin_cpus: bool
    worker_processes: int


def load_config(environ: Mapping[str, str]) -> "Config":
    """Parse every setting from environ (a mapping), or raise ConfigError naming the first bad one."""
    values = {}
    for name, parse, default in SETTINGS:
        text = environ.get(name, default)
        try:
            values[name.lower()] = parse(text.strip())
        except ValueError as error:
            # A password in a URL never reaches the message.
            raise ConfigError(f"{name}={mask_password(text)!r} is invalid: expected {error}") from None
    return Config(**values)


def load_config_or_exit(environ: Mapping[str, str]) -> "Config":
    """load_config for an entry point: a bad value ends the process with status 2 and one line."""
    try:
        return load_config(environ)
    except ConfigError as error:
        print(f"paypoc: {error}", file=sys.stderr)
        sys.exit(2)
