"""The soak's private stack: a PostgreSQL cluster, a Redis server and gunicorn.

Everything here is the soak's own: the cluster is initdb'ed into a temporary
directory and listens on its own port, Redis likewise, so restarting or
stopping them disturbs nobody else on the machine (the shared servers on
5432 and 6379 are never touched). :class:`Cleanup` undoes everything at exit,
also on an exception or SIGTERM/SIGINT.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent


class Cleanup:
    """Undo actions run once, newest first, at exit, on SIGTERM/SIGINT or when asked."""

    def __init__(self) -> None:
        self._actions: list[tuple[str, Callable[[], None]]] = []
        atexit.register(self.run)
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)

    def add(self, name: str, action: Callable[[], None]) -> None:
        self._actions.append((name, action))

    def run(self) -> None:
        while self._actions:
            name, action = self._actions.pop()
            try:
                action()
            except Exception as error:  # keep undoing the rest
                print(f"cleanup: {name} failed: {error!r}", file=sys.stderr)

    def _on_signal(self, signum, frame) -> None:
        self.run()
        raise SystemExit(128 + signum)


def free_port(preferred: int) -> int:
    """The first port from ``preferred`` up where nothing listens.

    Callers pick ports below the kernel's ephemeral range (32768-60999 by
    default), so that while a server is stopped no outgoing connection can be
    given its port and keep it from starting again.
    """
    for port in range(preferred, preferred + 500):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port from {preferred}")


def wait_for_port(port: int, timeout: float, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process {process.args[0]} exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


def make_workdir(cleanup: Cleanup, keep: bool) -> Path:
    workdir = Path(tempfile.mkdtemp(prefix="tl-soak-"))
    workdir.chmod(0o755)  # the postgres user must reach its directories inside
    if not keep:
        cleanup.add("remove work directory", lambda: shutil.rmtree(workdir, ignore_errors=True))
    return workdir


class PrivatePostgres:
    """A throw-away PostgreSQL cluster (trust auth) on its own port.

    ``track_commit_timestamp`` is on: the checks read when each revocation
    committed (``pg_xact_commit_timestamp(xmin)`` of the revoked row).
    """

    def __init__(self, workdir: Path, port: int) -> None:
        versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not versions:
            raise RuntimeError("no /usr/lib/postgresql/*/bin/initdb: install PostgreSQL")
        self.bin = Path(versions[-1]).parent
        self.port = port
        self.data = workdir / "pgdata"
        self.run_dir = workdir / "pgrun"  # socket and log, owned by the server's user
        self.log = self.run_dir / "postgresql.log"
        self.as_root = os.geteuid() == 0

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/soak"

    @property
    def version(self) -> str:
        return subprocess.run(
            [self.bin / "postgres", "--version"], capture_output=True, text=True
        ).stdout.strip()

    def _run(self, *args: object, check: bool = True) -> subprocess.CompletedProcess:
        command = [str(arg) for arg in args]
        if self.as_root:  # initdb refuses to run as root
            command = ["runuser", "-u", "postgres", "--", *command]
        # stdout to a file, not a pipe: the postmaster inherits it and never closes it.
        with open(os.devnull, "wb") as devnull:
            return subprocess.run(command, stdout=devnull, stderr=subprocess.PIPE, check=check)

    def init_and_start(self, cleanup: Cleanup) -> None:
        import psycopg

        for directory in (self.data, self.run_dir):
            directory.mkdir()
            if self.as_root:
                shutil.chown(directory, "postgres", "postgres")
        initdb = ["-D", self.data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"]
        self._run(self.bin / "initdb", *initdb)
        # In the cluster's own configuration, not on pg_ctl's command line: every start
        # and restart must use the private port, never the default 5432.
        settings = {
            "port": str(self.port),
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.run_dir}'",
            "track_commit_timestamp": "on",
            "max_connections": "60",
        }
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write("".join(f"{name} = {value}\n" for name, value in settings.items()))
        cleanup.add("stop private PostgreSQL", self.stop_now)
        self.start()
        server = f"postgres://postgres@127.0.0.1:{self.port}/postgres"
        with psycopg.connect(server, autocommit=True) as connection:
            connection.execute("CREATE DATABASE soak")

    def restart_fast(self) -> None:
        """``pg_ctl restart -m fast``: sessions terminated, transactions rolled back."""
        self._run(
            self.bin / "pg_ctl", "-D", self.data, "-l", self.log, "-w", "-m", "fast", "restart"
        )

    def stop(self, mode: str = "fast") -> None:
        self._run(self.bin / "pg_ctl", "-D", self.data, "-w", "-m", mode, "stop")

    def start(self) -> None:
        self._run(self.bin / "pg_ctl", "-D", self.data, "-l", self.log, "-w", "start")

    def stop_now(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run(
                self.bin / "pg_ctl", "-D", self.data, "-w", "-m", "immediate", "stop", check=False
            )


class PrivateRedis:
    """A redis-server with no persistence: a restart comes back empty."""

    def __init__(self, workdir: Path, port: int) -> None:
        self.port = port
        self.workdir = workdir
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, 10, self.process)

    def stop(self) -> None:
        """The server goes away (SIGTERM, no save): connections are refused until restarted."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None


class Gunicorn:
    """The example project under gunicorn (sync workers), logging to one file."""

    def __init__(self, port: int, workers: int, env: dict[str, str], log: Path) -> None:
        self.port = port
        self.workers = workers
        self.env = env
        self.log = log
        self.process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, cleanup: Cleanup) -> None:
        log = open(self.log, "ab")  # noqa: SIM115 - the child writes to it until it stops
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "example_project.wsgi:application",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                str(self.workers),
                "--timeout",
                "30",
                "--graceful-timeout",
                "5",
                "--log-level",
                "info",
                "--error-logfile",
                "-",
                "--chdir",
                str(REPO_DIR),
            ],
            env=self.env,
            stdout=log,
            stderr=log,
            cwd=REPO_DIR,
            start_new_session=True,
        )
        cleanup.add("stop gunicorn", self.stop)
        wait_for_port(self.port, 60, self.process)

    def worker_pids(self) -> list[int]:
        """The master's living children (zombies not yet reaped excluded), from /proc."""
        if self.process is None:
            return []
        children = []
        for stat in glob.glob("/proc/[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = Path(stat).read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == self.process.pid and fields[0] != "Z":
                    children.append(int(Path(stat).parent.name))
        return sorted(children)

    def wait_for_replacement(self, killed: int, since: float, timeout: float = 30) -> float:
        """Seconds from ``since`` (monotonic) until ``killed`` is replaced by a new worker."""
        while time.monotonic() - since < timeout:
            pids = self.worker_pids()
            if killed not in pids and len(pids) >= self.workers:
                return time.monotonic() - since
            time.sleep(0.02)
        raise RuntimeError(f"gunicorn did not replace worker {killed}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGCONT)  # a worker a fault left frozen
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)
