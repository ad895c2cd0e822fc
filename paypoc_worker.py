"""The payment worker: `python paypoc_worker.py` runs WORKER_PROCESSES processes of MAX_WORKERS threads
processing payment jobs."""

import logging
import os
import signal
import sys
import threading

from lib.runtime.config import Config, load_config_or_exit, mask_password
from lib.runtime.logs import configure_logging
from lib.runtime.supervisor import Supervisor
from lib.store.attempts import Attempts
from lib.store.jobqueue import JobQueue, job_ttr
from lib.store.payments import PaymentStore
from lib.store.redis_client import open_redis
from lib.worker.heartbeat import Heartbeat
from lib.worker.jobs import PaymentJobs
from lib.worker.processor import SimulatedProcessor
from lib.worker.sweeper import Sweeper
from lib.worker.threads import PaymentWorker, start_threads

log = logging.getLogger("paypoc.worker")


def work(config: Config, number: int) -> int:
    """One worker process: its threads, sweeper and heartbeat, with clients of its own. The first
    SIGTERM lets the jobs in hand finish; a second exits at once."""
    configure_logging(config.log_level)
    stop = threading.Event()

    def on_signal(signum, frame):
        if stop.is_set():
            log.warning("Second signal: exiting now")
            os._exit(1)
        log.info("Stopping: finishing the jobs in hand (signal again to exit now)")
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)  # the supervisor passes Ctrl-C on as SIGTERM
    # Each thread gets a Redis connection of its own from one client (lib/store/redis_client.py),
    # and opens its own beanstalkd connection, as a greenstalk client is not thread-safe.
    redis = open_redis(config.redis_url, cluster=config.redis_cluster)
    ttr = job_ttr(config.processing_delay)
    attempts = Attempts(redis, lease_seconds=ttr, max_attempts=config.max_attempts)
    processor = SimulatedProcessor(redis, config.processing_delay, config.failure_rate)
    jobs = PaymentJobs(attempts, processor, config.retry_delay)
    worker = PaymentWorker(config.beanstalk_addr, config.beanstalk_tube, jobs, stop, config.max_workers)
    queue = JobQueue(config.beanstalk_addr, config.beanstalk_tube, ttr)
    sweeper = Sweeper(attempts, PaymentStore(redis), queue, config.stale_after, stop)
    log.info("Worker process %d of %d started: pid %d, %d thread(s)", number + 1, config.worker_processes,
             os.getpid(), config.max_workers)
    # GET /queue shows these, so that a reader (or `make demo`) knows how this worker's payments will go.
    settings = {"processing_delay": config.processing_delay, "failure_rate": config.failure_rate,
                "max_attempts": config.max_attempts, "retry_delay": config.retry_delay}
    heartbeat = Heartbeat(redis, config.max_workers, worker.jobs_done, settings, stop)
    threads = start_threads(worker.run, config.max_workers, "worker")
    # Two helpers: the sweeper re-queues lost jobs, the heartbeat says this process is alive.
    for name, target in (("sweeper", sweeper.run), ("heartbeat", heartbeat.run)):
        threads.append(threading.Thread(target=target, name=name))
        threads[-1].start()
    for thread in threads:
        while thread.is_alive():
            thread.join(0.5)  # a timed join keeps the main thread free to run signal handlers
    done = worker.jobs_done()
    log.info("Worker stopped after %d job(s): %s", sum(done.values()),
             ", ".join(f"{count} {outcome}" for outcome, count in done.items()))
    return 0


def main() -> int:
    """Start WORKER_PROCESSES worker processes and keep them running until stopped."""
    config = load_config_or_exit(os.environ)
    configure_logging(config.log_level, batched=False)  # the supervisor starts no thread before it forks
    log.info("Worker started: %d process(es) of %d thread(s), redis=%s, beanstalkd=%s tube %s",
             config.worker_processes, config.max_workers, mask_password(config.redis_url),
             ",".join(f"{host}:{port}" for host, port in config.beanstalk_addr), config.beanstalk_tube)
    return Supervisor("Worker", config.worker_processes, lambda number: work(config, number)).run()


if __name__ == "__main__":
    sys.exit(main())
