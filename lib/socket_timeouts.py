"""Socket timeouts kept by the kernel, so a thread waiting on Redis or beanstalkd hands over the GIL once."""

import socket
import struct

# How long the API and the worker wait on Redis or beanstalkd before giving up. GET /ready asks
# both in turn and must answer within 2 s even when both are stalled: twice this, with room.
DEPENDENCY_TIMEOUT = 0.8  # seconds


def use_kernel_timeouts(sock, seconds):
    """Make sock blocking, with each read and write failing after `seconds` without progress.

    Python's own sock.settimeout(seconds) does the same job in user space: before every send
    and recv it calls poll(), and CPython lets go of the GIL around each of the two calls, so
    a round trip handed the GIL over four times instead of two. With several threads busy,
    every hand-over costs context switches. SO_RCVTIMEO and SO_SNDTIMEO keep the limit in
    the kernel, and each send or recv is one system call.

    A read that runs out of time fails with EAGAIN (BlockingIOError) rather than
    socket.timeout, and a reader made with makefile() sees it as the end of the stream.
    """
    sock.settimeout(None)
    whole = int(seconds)
    limit = struct.pack("ll", whole, int((seconds - whole) * 1_000_000))  # a struct timeval
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, limit)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, limit)
