"""Timestamps as the API shows them: RFC 3339, UTC, to the microsecond."""

from datetime import datetime, timezone


def utc_now() -> str:
    """The current time, such as 2026-11-24T10:00:00.123456Z."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
