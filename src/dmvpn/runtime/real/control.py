"""The daemon's control socket: a Unix stream socket carrying one admin
command per connection.

Protocol: the client sends one line (UTF-8, ``\\n``-terminated, at most
:data:`MAX_COMMAND` bytes) and reads the reply until the server closes the
connection. The reply is the command's text as IOS would print it; a reply
whose first line starts with ``%`` is an error (IOS convention), which the
command-line client turns into a non-zero exit status.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
from dataclasses import dataclass, field
from pathlib import Path

from dmvpn.runtime.real.errors import RuntimeSetupError

MAX_COMMAND = 4096
REPLY_TIMEOUT = 2.0
#: Connections open at once (IOS has 16 vty lines); one more is answered
#: "% Too many control connections" and closed at once.
MAX_CLIENTS = 16
#: Seconds a client may take to send its line before it is dropped (IOS's
#: ``exec-timeout``, shortened: a command is one line).
IDLE_TIMEOUT = 5.0
#: After accept(2) fails for want of descriptors (EMFILE, ENFILE...), the
#: listener is not watched for this long, so the loop does not spin on it.
ACCEPT_BACKOFF = 0.5
IDLE_REPLY = f"% Timed out waiting for a command ({IDLE_TIMEOUT:g} s)"
DEFAULT_CONTROL_DIR = Path("/run/dmvpn")


def default_control_path(hostname: str) -> Path:
    """``/run/dmvpn/<hostname>.sock``."""
    return DEFAULT_CONTROL_DIR / f"{hostname}.sock"


class AcceptFailed(Exception):
    """accept(2) failed for a reason other than "no client waiting";
    ``str()`` is the reason."""


class BadRequest(Exception):
    """A client sent something that is not a command line; ``str()`` is the
    IOS-style error text to reply with."""


@dataclass(slots=True)
class Pending:
    """A client connection whose command line is not complete yet."""

    sock: socket.socket
    since: float
    data: bytearray = field(default_factory=bytearray)


class ControlServer:
    """The listening socket; the runtime's loop calls :meth:`accept` and
    :meth:`read` when they are readable and :meth:`reply` once a line is in."""

    def __init__(self, path: str | Path, *, max_clients: int = MAX_CLIENTS,
                 idle_timeout: float = IDLE_TIMEOUT) -> None:
        self.path = Path(path)
        self.max_clients = max_clients
        self.idle_timeout = idle_timeout
        self._remove_stale()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RuntimeSetupError(f"cannot create {self.path.parent}: {exc.strerror}") from None
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.sock.bind(str(self.path))
            os.chmod(self.path, 0o600)
            self.sock.listen(16)
        except OSError as exc:
            self.sock.close()
            raise RuntimeSetupError(f"cannot listen on control socket {self.path}: {exc.strerror}") from None
        self.sock.setblocking(False)
        self.pending: dict[int, Pending] = {}

    def _remove_stale(self) -> None:
        """A socket file nobody listens on is left from a crash: remove it.
        One somebody answers on belongs to a running daemon: refuse."""
        try:
            mode = self.path.lstat().st_mode
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(mode):
            raise RuntimeSetupError(f"control path {self.path} exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(self.path))
        except OSError:
            self.path.unlink(missing_ok=True)
            return
        finally:
            probe.close()
        raise RuntimeSetupError(f"control socket {self.path} is in use: another daemon is running")

    def accept(self, now: float) -> socket.socket | None:
        """Accept one client (non-blocking), or None when none is waiting.
        A client over :attr:`max_clients` is answered "% Too many control
        connections" and closed (then None too). accept(2) failing otherwise (no descriptor
        left, EMFILE/ENFILE, a client gone, ...) raises
        :class:`AcceptFailed` with the reason; the server stays usable."""
        try:
            conn, _ = self.sock.accept()
        except BlockingIOError:
            return None
        except OSError as exc:
            raise AcceptFailed(exc.strerror or str(exc)) from None
        if len(self.pending) >= self.max_clients:
            self._answer(conn, f"% Too many control connections (at most {self.max_clients} at once)")
            return None
        conn.setblocking(False)
        self.pending[conn.fileno()] = Pending(conn, now)
        return conn

    def expired(self, now: float) -> list[socket.socket]:
        """The clients that sent no complete line within the idle timeout."""
        limit = now - self.idle_timeout
        return [p.sock for p in self.pending.values() if p.since <= limit]

    def next_expiry(self) -> float | None:
        """When the oldest pending client times out, or None."""
        if not self.pending:
            return None
        return min(p.since for p in self.pending.values()) + self.idle_timeout

    def read(self, conn: socket.socket) -> str | None:
        """Read what the client sent; the command once its line is complete
        (or the client half-closed), else None. A line that is too long or
        not UTF-8 raises :class:`BadRequest` (its text is the reply)."""
        entry = self.pending[conn.fileno()]
        try:
            chunk = conn.recv(MAX_COMMAND)
        except BlockingIOError:
            return None
        except OSError:
            chunk = b""
        entry.data += chunk
        if b"\n" not in entry.data and chunk and len(entry.data) <= MAX_COMMAND:
            return None
        line = bytes(entry.data).split(b"\n", 1)[0]
        if len(line) > MAX_COMMAND:
            raise BadRequest(f"% Command longer than {MAX_COMMAND} bytes")
        try:
            return line.decode().strip()
        except UnicodeDecodeError:
            raise BadRequest("% Command is not UTF-8") from None

    def reply(self, conn: socket.socket, text: str) -> None:
        """Send ``text`` and close the connection (bounded by a timeout so a
        stuck client cannot stall the daemon)."""
        self.pending.pop(conn.fileno(), None)
        self._answer(conn, text)

    @staticmethod
    def _answer(conn: socket.socket, text: str) -> None:
        try:
            conn.settimeout(REPLY_TIMEOUT)
            conn.sendall(text.encode() + (b"" if text.endswith("\n") else b"\n"))
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        """Close every connection and the listener; remove the socket file."""
        for entry in self.pending.values():
            entry.sock.close()
        self.pending.clear()
        self.sock.close()
        self.path.unlink(missing_ok=True)


class ControlClientError(Exception):
    """The daemon could not be reached; ``str()`` is the one-line message."""


def send_command(path: str | Path, command: str, timeout: float = 10.0) -> str:
    """Send ``command`` to the daemon listening on ``path``; its reply."""
    path = Path(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(path))
        sock.sendall(command.encode() + b"\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except FileNotFoundError:
        raise ControlClientError(f"no daemon: control socket {path} does not exist") from None
    except ConnectionRefusedError:
        raise ControlClientError(f"no daemon listening on {path} (stale socket?)") from None
    except TimeoutError:
        raise ControlClientError(f"daemon on {path} did not answer within {timeout:g} s") from None
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise ControlClientError(f"permission denied on {path}: run as root") from None
        raise ControlClientError(f"control socket {path}: {exc.strerror}") from None
    finally:
        sock.close()
    return b"".join(chunks).decode(errors="replace").rstrip("\n")
