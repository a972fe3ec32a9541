"""What every benchmark stage shares: the stacks, Django set-up, timing and the fixtures.

A *stack* is a database and a cache: ``sqlite-locmem`` (the embedded default)
or ``postgres-redis`` (production). ``run.py`` creates the databases and runs
each stage (``micro.py``, ``http_load.py``, ``scale.py``) as its own process
with the stack in the environment, since Django is configured once per
process.

Timing: a *round* runs one case ``n`` times in a row and keeps the mean per
call; cases are interleaved round by round (so a burst of load on this shared
machine hits every package alike), and each case reports the median of its
round means with their min-max.
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent

#: Our PostgreSQL databases all start with this; run.py drops them when done.
PG_PREFIX = "bench_tl_"
PG_SERVER = "postgres://postgres@127.0.0.1:5432"
#: The Redis database the benchmarks use and flush (nothing else lives there).
REDIS_URL = "redis://127.0.0.1:6379/9"

STACKS = {
    "sqlite-locmem": "SQLite + local-memory cache",
    "postgres-redis": "PostgreSQL + Redis cache",
}

PASSWORD = "bench-password-0123"


def quick() -> bool:
    """``BENCH_QUICK=1``: fewer rounds and shorter runs, for development."""
    return os.environ.get("BENCH_QUICK", "") not in ("", "0")


def stack_env(stack: str, workdir: Path, *, pg_name: str = f"{PG_PREFIX}main") -> dict[str, str]:
    """Environment variables selecting a stack for bench_project.settings."""
    if stack == "sqlite-locmem":
        database, cache = f"sqlite:///{workdir / 'bench.sqlite3'}", "locmem://"
    elif stack == "postgres-redis":
        database, cache = f"{PG_SERVER}/{pg_name}", REDIS_URL
    else:
        raise ValueError(f"unknown stack {stack!r}")
    return {
        "BENCH_DATABASE_URL": database,
        "BENCH_CACHE_URL": cache,
        "BENCH_WORKDIR": str(workdir),
        "BENCH_STACK": stack,
        "DJANGO_SETTINGS_MODULE": "bench_project.settings",
    }


def setup_django() -> None:
    """Configure Django in this process from the environment run.py passed in."""
    for path in (str(BENCH_DIR), str(REPO_DIR)):
        if path not in sys.path:
            sys.path.insert(0, path)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench_project.settings")
    import django

    django.setup()


def write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str))


# -- Timing ---------------------------------------------------------------------


@dataclass
class Case:
    """One thing to time.

    ``prepare(n)`` builds what ``n`` calls need (outside the clock) and returns
    a list of arguments; ``call(arg)`` is what is timed; ``after(result)``, if
    given, runs after each call outside the clock (to carry a refresh token
    along a chain, say). With ``after`` or ``per_call_setup`` each call is
    timed on its own; otherwise the round is timed as a whole.
    """

    name: str
    prepare: Callable[[int], list]
    call: Callable
    after: Callable | None = None
    #: Run before each call, outside the clock (clearing a cache, say).
    per_call_setup: Callable[[], None] | None = None
    calls_per_round: int | None = None
    round_means: list[float] = field(default_factory=list)
    #: This process's CPU time per call, by round (wall time is what is reported; CPU
    #: time shows how much of it was spent here rather than waiting for a server or
    #: for a core taken by someone else).
    round_cpu: list[float] = field(default_factory=list)

    def run_round(self, n: int) -> float:
        args = self.prepare(n)
        gc.collect()
        if self.after is None and self.per_call_setup is None:
            cpu, start = time.process_time(), time.perf_counter()
            for arg in args:
                self.call(arg)
            wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        else:
            wall = cpu = 0.0
            for arg in args:
                if self.per_call_setup is not None:
                    self.per_call_setup()
                cpu_start, start = time.process_time(), time.perf_counter()
                result = self.call(arg)
                wall += time.perf_counter() - start
                cpu += time.process_time() - cpu_start
                if self.after is not None:
                    self.after(result)
        self.round_cpu.append(cpu / n)
        return wall / n


def summary(values: Iterable[float], scale: float = 1.0) -> dict:
    values = [value * scale for value in values]
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def calibrate(
    cases: list[Case],
    round_seconds: float,
    min_calls: int = 1,
    max_calls: int = 5000,
    warmup_calls: int = 3,
) -> None:
    """Warm each case up and fix its calls per round (unless it has them already)."""
    for case in cases:
        if warmup_calls:
            case.run_round(warmup_calls)
        if case.calls_per_round is None:
            probe = case.run_round(max(min_calls, 3))
            wanted = int(round_seconds / max(probe, 1e-7))
            case.calls_per_round = max(min_calls, min(max_calls, wanted))


def measure(
    cases: list[Case],
    *,
    rounds: int,
    round_seconds: float,
    min_calls: int = 1,
    max_calls: int = 5000,
    warmup_calls: int = 3,
) -> dict[str, dict]:
    """Time cases interleaved; returns ``{name: summary in microseconds}``.

    The number of calls per round is calibrated per case so that a round lasts
    about ``round_seconds`` (within ``min_calls``..``max_calls``), unless the
    case fixes it.
    """
    calibrate(cases, round_seconds, min_calls, max_calls, warmup_calls)
    for index in range(rounds):
        # Rotate the order each round: no case always runs first or last.
        shift = index % len(cases)
        for case in cases[shift:] + cases[:shift]:
            case.round_means.append(case.run_round(case.calls_per_round))
    return {
        case.name: {
            **summary(case.round_means, 1e6),
            "cpu_median": statistics.median(case.round_cpu[-rounds:]) * 1e6,
            "calls_per_round": case.calls_per_round,
        }
        for case in cases
    }


_TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE SAVEPOINT")


def query_record(counts: list[int], control: list[int], sql: list[str]) -> dict:
    """Statements per call: ``min``/``max`` exclude transaction control, ``with_tx`` includes it.

    Django 4.2+ logs BEGIN/COMMIT/SAVEPOINT too; a "query" here is a statement
    that reads or writes data, and the transaction statements are shown apart.
    """
    return {
        "min": min(counts),
        "max": max(counts),
        "with_tx": max(c + t for c, t in zip(counts, control, strict=True)),
        "sql": sql,
    }


def split_captured(captured) -> tuple[int, int, list[str]]:
    """(data statements, transaction statements, abbreviated SQL) of a capture."""
    sql = [query["sql"] for query in captured.captured_queries]
    control = sum(1 for text in sql if text.lstrip().upper().startswith(_TRANSACTION_CONTROL))
    return len(sql) - control, control, [text[:160] for text in sql]


def count_queries(function: Callable, calls: int = 5, before: Callable | None = None) -> dict:
    """Queries per call of ``function``, counted with ``CaptureQueriesContext``."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    counts, control, last = [], [], []
    for _ in range(calls):
        if before is not None:
            before()
        with CaptureQueriesContext(connection) as captured:
            function()
        data, tx, last = split_captured(captured)
        counts.append(data)
        control.append(tx)
    return query_record(counts, control, last)


# -- Machine --------------------------------------------------------------------


def machine_info() -> dict:
    """CPU, cores, Python and package versions; database versions are added by stages."""
    import platform
    import sqlite3
    from importlib.metadata import version

    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    packages = [
        "Django",
        "djangorestframework",
        "django-token-lifecycle",
        "djangorestframework-simplejwt",
        "django-oauth-toolkit",
        "django-rest-knox",
        "PyJWT",
        "cryptography",
        "gunicorn",
        "psycopg",
        "redis",
    ]
    versions = {}
    for name in packages:
        try:
            versions[name] = version(name)
        except Exception:
            versions[name] = "?"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "sqlite": sqlite3.sqlite_version,
        "packages": versions,
        "loadavg": os.getloadavg(),
    }
