"""A TCP proxy that breaks connections on purpose: it stands between a process and Redis (or
beanstalkd) and holds a command, holds the answer to one, or cuts the connection after one."""

import socket
import threading
import time

MODES = ("late", "cut", "stall")


def split_command(buffer):
    """(the first whole Redis command in buffer, the rest), or None while it is incomplete.

    Clients send each command as a RESP array of bulk strings: *<count> then, per argument,
    $<length> and the bytes.
    """
    end = buffer.find(b"\r\n")
    if end < 0:
        return None
    count, position = int(buffer[1:end]), end + 2
    for _ in range(count):
        end = buffer.find(b"\r\n", position)
        if end < 0:
            return None
        position = end + 2 + int(buffer[position + 1:end]) + 2
        if position > len(buffer):
            return None
    return buffer[:position], buffer[position:]


class _Link:
    """One client connection and the connection to the server made for it."""

    def __init__(self, client, server):
        self.client, self.server = client, server
        self.hold_until = 0.0  # server bytes wait until then ("late")
        self.cut_on_answer = False  # the next server bytes close the link instead ("cut")

    def close(self):
        for sock in (self.client, self.server):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()


class FaultProxy:
    """Forwards 127.0.0.1:port to 127.0.0.1:target_port, and breaks the command it is armed for.

    With redis=True it reads the Redis commands clients send, counting each one (across all
    connections) in `commands`. arm(mode, nth=N) picks the Nth command from now, arm(mode,
    containing=b"...") the first that holds those bytes. Modes:
      late   deliver the command, and hold back the server's answer for `hold` seconds
      cut    deliver the command, and close the client's connection when the server answers
      stall  hold the command itself until release(), then deliver it
    `fired` is set once the armed fault has happened. With redis=False (beanstalkd) it only
    forwards bytes, and cut_all() closes every connection.
    """

    def __init__(self, target_port, redis=True):
        self.target_port, self.redis = target_port, redis
        self.commands = 0
        self.fired = threading.Event()
        self._armed = None  # (mode, nth or None, bytes or None, hold)
        self._released = threading.Event()
        self._links = []
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def arm(self, mode, nth=None, containing=None, hold=0.0):
        """Break one command: the nth from now, or the first containing these bytes."""
        assert mode in MODES and (nth is None) != (containing is None)
        with self._lock:
            self.fired.clear()
            self._released.clear()
            self._armed = (mode, nth, containing, hold)

    def release(self):
        """Let a stalled command go on to the server."""
        self._released.set()

    def cut_all(self):
        """Close every connection now, as a network failure would."""
        with self._lock:
            links, self._links = self._links, []
        for link in links:
            link.close()

    def close(self):
        self._released.set()
        self._listener.close()
        self.cut_all()

    def _accept(self):
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            try:
                server = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            link = _Link(client, server)
            with self._lock:
                self._links.append(link)
            threading.Thread(target=self._client_to_server, args=(link,), daemon=True).start()
            threading.Thread(target=self._server_to_client, args=(link,), daemon=True).start()

    def _fault_for(self, command):
        """The mode this command is to be broken with, or None; counts it."""
        with self._lock:
            self.commands += 1
            if self._armed is None:
                return None, 0.0
            mode, nth, containing, hold = self._armed
            if nth is not None:
                nth -= 1
                self._armed = (mode, nth, None, hold)
                if nth > 0:
                    return None, 0.0
            elif containing not in command:
                return None, 0.0
            self._armed = None
            return mode, hold

    def _client_to_server(self, link):
        buffer = b""
        try:
            while chunk := link.client.recv(65536):
                if not self.redis:
                    link.server.sendall(chunk)
                    continue
                buffer += chunk
                while (split := split_command(buffer)) is not None:
                    command, buffer = split
                    mode, hold = self._fault_for(command)
                    if mode == "late":
                        link.hold_until = time.monotonic() + hold
                    elif mode == "cut":
                        link.cut_on_answer = True
                    elif mode == "stall":
                        self.fired.set()
                        self._released.wait()
                    link.server.sendall(command)
                    if mode == "late":
                        self.fired.set()
        except OSError:
            pass
        link.close()

    def _server_to_client(self, link):
        try:
            while chunk := link.server.recv(65536):
                if link.cut_on_answer:
                    self.fired.set()
                    break  # the server has answered, so it ran the command: cut before the answer arrives
                wait = link.hold_until - time.monotonic()
                if wait > 0:
                    time.sleep(wait)  # the answer is late; the client may have given up by now
                link.client.sendall(chunk)
        except OSError:
            pass
        link.close()
