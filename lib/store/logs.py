"""Logging set-up: one line per event on standard output, stamped as the Go original's logs are."""

import logging
import sys

LINE_FORMAT = "%(asctime)s %(levelname)s %(message)s"
TIME_FORMAT = "%Y/%m/%d %H:%M:%S"  # 2026/11/24 10:00:00, as in the original's worker log


def configure_logging(level: int) -> None:
    """Send every record at `level` or above to standard output, one line each."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter(LINE_FORMAT, TIME_FORMAT))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    # Under load waitress warns about every request that waits for a free thread; the access
    # log already shows the load, so only its errors are kept.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
