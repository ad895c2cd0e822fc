"""The payment API: `python paypoc.py` serves it on HOST:PORT from API_PROCESSES processes."""

import logging
import os
import socket
import sys

from lib.api.app import ROUTES, create_app
from lib.api.durations import RequestDurations
from lib.http.server import listen, serve_until_stopped
from lib.runtime.config import Config, load_config_or_exit, mask_password
from lib.runtime.logs import configure_logging
from lib.runtime.supervisor import Supervisor
from lib.store.jobqueue import JobQueue, job_ttr
from lib.store.redis_client import open_redis

log = logging.getLogger("paypoc.api")


def serve(config: Config, sock: socket.socket, durations: RequestDurations, number: int) -> int:
    """One API process: its own clients and threads, serving the shared socket until SIGTERM."""
    configure_logging(config.log_level)
    redis = open_redis(config.redis_url, cluster=config.redis_cluster)
    queue = JobQueue(config.beanstalk_addr, config.beanstalk_tube, ttr=job_ttr(config.processing_delay))
    app = create_app(config, redis, queue, durations.for_process(number))
    log.info("API process %d of %d: pid %d, request ids %s...", number + 1, config.api_processes, os.getpid(),
             app.ids.prefix)
    serve_until_stopped(app, [sock], config.threads)
    return 0


def main() -> int:
    """Read the configuration, listen, and serve from API_PROCESSES processes until stopped."""
    config = load_config_or_exit(os.environ)
    configure_logging(config.log_level, batched=False)  # the supervisor starts no thread before it forks
    try:
        # One socket, bound here and shared by every process: the kernel hands each connection to
        # whichever process is free to accept it, and a taken port is one clear line.
        sock = listen(config.host, config.port)
    except OSError as error:  # the port is taken, or the address is not this machine's
        log.error("Cannot listen on %s:%d: %s", config.host, config.port, error.strerror)
        return 1
    durations = RequestDurations.for_routes(ROUTES, config.api_processes)
    log.info("API listening on http://%s:%d (%d process(es) of %d threads, redis=%s, beanstalkd=%s tube %s)",
             config.host, config.port, config.api_processes, config.threads, mask_password(config.redis_url),
             ",".join(f"{host}:{port}" for host, port in config.beanstalk_addr), config.beanstalk_tube)
    supervisor = Supervisor("API", config.api_processes, lambda number: serve(config, sock, durations, number),
                            pin=config.api_pin_cpus)
    code = supervisor.run()
    log.info("API stopped")
    return code


if __name__ == "__main__":
    sys.exit(main())
