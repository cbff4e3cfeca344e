"""A real ``redis-server`` for the tests: a free loopback port, a temporary directory, no persistence.

Use it by importing the fixture: ``from tests.redis_server import redis_fixture  # noqa: F401`` gives a test the
``redis_server`` argument (a :class:`RedisServer`).

``make test`` installs the Debian ``redis-server`` package when it is missing (see the Makefile); elsewhere the
Redis tests skip with a message saying how to install it. No fake Redis: the Lua scripts, stream commands and
consumer-group semantics under test are Redis's own.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

INSTALL_HINT = (
    "redis-server not found on PATH: install it (Debian/Ubuntu: apt-get install redis-server; macOS: brew "
    "install redis) or run `make test`, which installs it when running as root"
)


def redis_binary() -> str | None:
    return shutil.which("redis-server")


def free_port() -> int:
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """One ``redis-server`` process; :meth:`stop` kills it (a test may do that mid-run), :meth:`start` restarts."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        binary = redis_binary()
        if binary is None:
            pytest.skip(INSTALL_HINT)
        self.workdir.mkdir(parents=True, exist_ok=True)
        cmd = [
            binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(self.workdir), "--daemonize", "no", "--protected-mode", "yes", "--loglevel", "warning",
        ]  # fmt: skip
        log = (self.workdir / "redis.log").open("ab")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"redis-server exited with {self.proc.returncode}; see {self.workdir}/redis.log"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not answer on port {self.port} within {timeout}s")
            time.sleep(0.02)

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """Kill the server at once (SIGKILL: what "Redis lost mid-run" looks like to a client)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None


@contextlib.contextmanager
def running_redis(workdir: Path) -> Iterator[RedisServer]:
    server = RedisServer(workdir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(name="redis_server")
def redis_fixture(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh, empty redis-server for one test, stopped after it."""
    with running_redis(tmp_path / "redis") as server:
        yield server
