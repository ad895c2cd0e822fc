"""The payment API: `python paypoc.py` serves it with waitress on HOST:PORT."""

import logging
import os
import signal
import sys

from lib.api.app import create_app
from lib.http.server import create_server
from lib.runtime.config import load_config_or_exit, mask_password
from lib.runtime.logs import configure_logging
from lib.store.jobqueue import JobQueue, job_ttr
from lib.store.redis_client import open_redis

log = logging.getLogger("paypoc.api")


def main() -> int:
    """Read the configuration, wire the app to Redis and beanstalkd, and serve until stopped."""
    config = load_config_or_exit(os.environ)
    configure_logging(config.log_level)
    redis = open_redis(config.redis_url)
    queue = JobQueue(config.beanstalk_addr, config.beanstalk_tube, ttr=job_ttr(config.processing_delay))
    app = create_app(config, redis, queue)
    # waitress stops cleanly on SystemExit; as PID 1 in a container, SIGTERM would otherwise be ignored.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    try:
        server = create_server(app, config)
    except OSError as error:  # the port is taken, or the address is not this machine's
        log.error("Cannot listen on %s:%d: %s", config.host, config.port, error.strerror)
        return 1
    log.info("API listening on http://%s:%d (threads=%d, redis=%s, beanstalkd=%s:%d tube %s)",
             config.host, config.port, config.threads, mask_password(config.redis_url), *config.beanstalk_addr,
             config.beanstalk_tube)
    server.run()
    log.info("API stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
