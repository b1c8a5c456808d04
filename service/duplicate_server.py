"""One duplicate index per host instead of one per process: a small server holding the index and
the client the API processes, channel consumers and workers use instead of their own.

The index of 1.5 million recent orders costs about 1.2 GB (docs/duplicates.md); every process
checking appeals used to build its own. With `HOTLINE_DUPLICATE_SERVER` set (a Unix socket path,
or `host:port`), `hotline duplicate-server` holds the only copy, catches it up with the database
as before (`router.duplicates.detector.DuplicateDetector`) and answers the checks; the other
processes send it the records of their new orders. The index and its scores are the very same
code, so detection quality does not change; only where it runs does.

Transport: `multiprocessing.connection` (standard library): the peer proves it knows the key
(HMAC challenge, derived from `HOTLINE_SECRET_KEY`) before anything is unpickled. A failing or
missing server raises in the client, which intake logs: duplicate detection is advice and never
blocks an appeal (`service.intake._find_duplicates`).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import queue
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, suppress
from multiprocessing.connection import Client, Connection, Listener
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from router.duplicates.index import AppealRecord, DuplicateCheck

__all__ = ["DuplicateServer", "RemoteDetector", "address_of", "authkey_of"]

log = logging.getLogger(__name__)

Address = str | tuple[str, int]
CheckMany = Callable[[list[AppealRecord]], list[DuplicateCheck]]
WarmUp = Callable[[], int]


def address_of(setting: str) -> Address:
    """`/path/to.sock` (a Unix socket) or `host:port`."""
    if setting.startswith("/") or setting.startswith("."):
        return setting
    host, _, port = setting.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"not a socket path or host:port: {setting!r}")
    return host, int(port)


def authkey_of(secret: str) -> bytes:
    return hmac.new(secret.encode(), b"hotline duplicate server", hashlib.sha256).digest()


class DuplicateServer:
    """Answers `("check", records)` with `("ok", checks)` and `("warm",)` with `("ok", added)`;
    any failure with `("error", "<type>: <message>")`. One thread per client connection."""

    def __init__(
        self, address: Address, authkey: bytes, check_many: CheckMany, warm_up: WarmUp
    ) -> None:
        self.check_many = check_many
        self.warm_up = warm_up
        if isinstance(address, str):
            Path(address).parent.mkdir(parents=True, exist_ok=True)
            with suppress(FileNotFoundError):
                os.unlink(address)  # a socket left by a killed server
        self.listener = Listener(address, authkey=authkey)
        self.address = self.listener.address
        self._closed = threading.Event()

    def serve_forever(self) -> None:
        while not self._closed.is_set():
            try:
                connection = self.listener.accept()
            except OSError:
                if self._closed.is_set():
                    return
                log.warning("duplicate server: a client failed to connect", exc_info=True)
                continue
            except Exception:  # a peer that does not know the key
                log.warning("duplicate server: refused a client", exc_info=True)
                continue
            threading.Thread(
                target=self._serve, args=(connection,), name="duplicate-client", daemon=True
            ).start()

    def close(self) -> None:
        self._closed.set()
        self.listener.close()

    def _serve(self, connection: Connection) -> None:
        with connection:
            while True:
                try:
                    request = connection.recv()
                except (EOFError, OSError):
                    return
                try:
                    if request[0] == "check":
                        answer: tuple[str, Any] = ("ok", self.check_many(list(request[1])))
                    elif request[0] == "warm":
                        answer = ("ok", self.warm_up())
                    else:
                        answer = ("error", f"unknown request {request[0]!r}")
                except Exception as exc:
                    log.exception("duplicate server: %s failed", request[0])
                    answer = ("error", f"{type(exc).__name__}: {exc}")
                try:
                    connection.send(answer)
                except OSError:
                    return


class RemoteDetector:
    """Stands in for a `DuplicateDetector` in a process that has no index of its own.

    Thread-safe: a small pool of connections, one per concurrent check."""

    def __init__(self, address: Address, authkey: bytes, *, pool_size: int = 8) -> None:
        self.address = address
        self.authkey = authkey
        self._idle: queue.LifoQueue[Connection] = queue.LifoQueue(maxsize=pool_size)

    def check_many(
        self, *, db_session: Session | None = None, records: Sequence[AppealRecord]
    ) -> list[DuplicateCheck]:
        """The server's checks of `records` (added to its index); `db_session` is unused: the
        server reads the database itself."""
        return list(self._call(("check", list(records))))

    def warm_up(self, session: Callable[[], AbstractContextManager[Session]] | None = None) -> int:
        """Ask the server to catch up now; returns how many orders it added."""
        return int(self._call(("warm",)))

    def close(self) -> None:
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return

    def _call(self, request: tuple[Any, ...]) -> Any:
        try:
            connection, pooled = self._idle.get_nowait(), True
        except queue.Empty:
            connection, pooled = Client(self.address, authkey=self.authkey), False
        try:
            connection.send(request)
            status, value = connection.recv()
        except (EOFError, OSError):
            connection.close()  # half a conversation: never reuse it
            if not pooled:
                raise
            # The server restarted since this connection was opened: once more on a new one (a
            # repeated check adds nothing twice, the detector skips orders it has seen).
            connection = Client(self.address, authkey=self.authkey)
            try:
                connection.send(request)
                status, value = connection.recv()
            except BaseException:
                connection.close()
                raise
        except BaseException:
            connection.close()
            raise
        try:
            self._idle.put_nowait(connection)
        except queue.Full:
            connection.close()
        if status != "ok":
            raise RuntimeError(f"duplicate server: {value}")
        return value
