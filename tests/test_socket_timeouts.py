"""Timeouts the kernel keeps: the socket stays blocking, and a read that waits too long still fails."""

import socket
import struct
import time

import pytest

from lib.jobqueue import connect
from lib.socket_timeouts import use_kernel_timeouts


def kernel_timeout(sock, option):
    """A socket's SO_RCVTIMEO or SO_SNDTIMEO, in seconds, to the millisecond (the kernel keeps it in ticks)."""
    seconds, microseconds = struct.unpack("ll", sock.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("ll")))
    return round(seconds + microseconds / 1_000_000, 3)


def test_a_read_from_a_silent_peer_fails_after_the_timeout():
    with socket.create_server(("127.0.0.1", 0)) as listener:
        with socket.create_connection(listener.getsockname()) as sock:
            use_kernel_timeouts(sock, 0.25)
            assert sock.gettimeout() is None  # blocking: Python polls before nothing
            for option in (socket.SO_RCVTIMEO, socket.SO_SNDTIMEO):
                assert kernel_timeout(sock, option) == pytest.approx(0.25, abs=0.01)
            started = time.monotonic()
            with pytest.raises(BlockingIOError):
                sock.recv(1)  # the peer accepted (in the kernel) and never writes
            assert time.monotonic() - started < 5  # it gave up, rather than waiting for ever


def test_beanstalkd_connections_get_the_kernel_timeout(beanstalkd_server):
    client = connect(("127.0.0.1", beanstalkd_server.port), "some-tube", 1.5)
    try:
        assert client.using() == "some-tube"
        assert client._sock.gettimeout() is None
        assert kernel_timeout(client._sock, socket.SO_RCVTIMEO) == 1.5
    finally:
        client.close()
