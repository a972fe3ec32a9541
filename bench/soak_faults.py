"""Faults injected during the soak, each with probes that say what clients saw.

- :func:`kill_mid_refresh`: a gunicorn worker is SIGKILLed while it is inside a
  refresh transaction that has already marked the old pair used and inserted
  the new one (it is held at the eviction step by a row lock the soak takes).
- :func:`kill_busy_workers`: workers SIGKILLed while their PostgreSQL backend
  has a write transaction open, under the normal load.
- :func:`restart_postgres` (``pg_ctl restart -m fast``) and
  :func:`postgres_outage` (stopped for a few seconds) on the private cluster.
- :func:`redis_outage`: the private Redis stopped, then started empty.

Each returns a :class:`Fault` with its window (wall clock), what the probes
saw, and the probe checks with their outcome.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
import time
from collections.abc import Callable

import psycopg
from soak_load import Answer, Api, Held, Recorder
from soak_stack import Gunicorn, PrivatePostgres, PrivateRedis


@dataclasses.dataclass
class Fault:
    name: str
    t_start: float
    t_end: float = 0.0
    seen: list[str] = dataclasses.field(default_factory=list)
    checks: list[tuple[str, bool, str]] = dataclasses.field(default_factory=list)

    def note(self, text: str) -> None:
        self.seen.append(text)

    def check(self, name: str, passed: bool, detail: str = "") -> None:
        self.checks.append((name, bool(passed), detail))


@dataclasses.dataclass
class FaultContext:
    pg: PrivatePostgres
    redis: PrivateRedis
    gunicorn: Gunicorn
    recorder: Recorder
    table: str
    probes: dict[str, dict]  # probe name -> client auth (client_id, secret)
    password_app: dict  # a confidential app allowing the password grant
    probe_user: tuple[str, str]  # (username, password), never changed by the admin
    cap: int
    #: Pairs issued for the probes before the load started (no wait in the load's queue).
    prepared: dict[str, list[Held]]
    pg_down_seconds: float
    redis_down_seconds: float

    @property
    def dsn(self) -> str:
        return self.pg.url

    def api(self, actor: str) -> Api:
        return Api(self.gunicorn.base_url, self.recorder, f"fault/{actor}")


def describe(answer: Answer) -> str:
    text = f"{answer.status}" if answer.status else "no HTTP answer"
    if answer.error:
        text += f" {answer.error}"
    if answer.retry_after:
        text += f" (Retry-After: {answer.retry_after})"
    return text


def query(dsn: str, sql: str, params=()) -> list[tuple]:
    with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as connection:
        return connection.execute(sql, params).fetchall()


def xact_outcome(dsn: str, xid: str, timeout: float = 10) -> str:
    """``committed`` or ``aborted`` (the cluster is fresh: xid epoch 0, so xid8 = xid)."""
    deadline = time.monotonic() + timeout
    while True:
        status = query(dsn, "SELECT pg_xact_status(%s::xid8)", [xid])[0][0]
        if status != "in progress" or time.monotonic() > deadline:
            return status
        time.sleep(0.05)


# -- Killing workers ------------------------------------------------------------------


def kill_mid_refresh(ctx: FaultContext) -> Fault:
    """SIGKILL the worker of a refresh whose transaction wrote both halves and waits.

    The probe client fills its cap, the soak locks the oldest pair's row, and
    a refresh of the newest pair starts: it marks that pair used, inserts the
    child, and then waits to evict the locked pair. Its worker is killed
    there. The transaction must roll back as a whole (no used pair without a
    child, no child, no eviction), and the refresh token must still work.
    """
    fault = Fault("SIGKILL a worker inside a refresh transaction", 0)
    auth, api = ctx.probes["kill"], ctx.api("kill")
    held = ctx.prepared["kill"]  # the probe principal's cap, filled before the load
    fault.t_start = time.time()
    oldest, newest = held[0], held[-1]
    blocker = psycopg.connect(ctx.dsn, connect_timeout=5)
    blocker.execute(f"SELECT id FROM {ctx.table} WHERE id = %s FOR UPDATE", [oldest.jti])
    answers: list[Answer] = []
    refresher_api = ctx.api("kill-refresh")
    thread = threading.Thread(target=lambda: answers.append(refresher_api.refresh(auth, newest)))
    thread.start()
    try:
        backend = _wait_for_blocked_backend(ctx.dsn, blocker.info.backend_pid)
        locks = query(
            ctx.dsn,
            "SELECT locktype || ' ' || mode FROM pg_locks WHERE pid = %s AND granted "
            "AND (locktype = 'advisory' OR relation = %s::regclass) ORDER BY 1",
            [backend["pid"], ctx.table],
        )
        fault.note(
            f"backend {backend['pid']} has written (xid {backend['xid']}) and waits "
            f"({backend['wait']}) on the locked row in `{backend['query'][:60]}...`; it holds "
            + ", ".join(lock for (lock,) in locks)
            + f" (the principal's advisory locks and the write lock on {ctx.table})"
        )
        worker = backend["worker"]
        if worker not in ctx.gunicorn.worker_pids():
            raise RuntimeError(f"backend {backend['pid']} does not belong to a gunicorn worker")
        os.kill(worker, signal.SIGKILL)
        killed_at = time.monotonic()
        fault.note(f"SIGKILL sent to worker {worker} (the backend's application_name)")
        respawn = ctx.gunicorn.wait_for_replacement(worker, killed_at)
        fault.note(f"gunicorn replaced the worker {respawn:.2f} s after the kill")
    finally:
        blocker.rollback()
        blocker.close()
        thread.join(30)
    fault.t_end = time.time()
    outcome = xact_outcome(ctx.dsn, backend["xid"])
    fault.note(f"the client saw: {describe(answers[0]) if answers else 'nothing'}")
    fault.check(
        "the killed refresh transaction rolled back, none of its rows visible",
        outcome == "aborted" and written_by(ctx, backend["xid"]) == "no rows",
        f"{outcome}, {written_by(ctx, backend['xid'])}",
    )
    rows = query(
        ctx.dsn,
        f"SELECT p.rotated_at, p.refresh_grace_ends_at, "
        f"(SELECT count(*) FROM {ctx.table} c WHERE c.parent_id = p.id), "
        f"(SELECT revoked_at FROM {ctx.table} WHERE id = %s) FROM {ctx.table} p WHERE p.id = %s",
        [oldest.jti, newest.jti],
    )
    rotated, grace_end, children, oldest_revoked = rows[0]
    fault.check(
        "old state only: pair not marked used, no child, nothing evicted",
        rotated is None and grace_end is None and children == 0 and oldest_revoked is None,
        f"rotated_at={rotated}, children={children}, oldest revoked_at={oldest_revoked}",
    )
    retry = api.refresh(auth, newest)
    fault.check("retrying the same refresh token succeeds", retry.status == 200, describe(retry))
    refresher_api.close()
    api.close()
    return fault


def written_by(ctx: FaultContext, xid: str) -> str:
    """What the rows last written by transaction ``xid`` are (none if it rolled back)."""
    total, used, children = query(
        ctx.dsn,
        "SELECT count(*), count(*) FILTER (WHERE rotated_at IS NOT NULL), "
        f"count(*) FILTER (WHERE parent_id IS NOT NULL) FROM {ctx.table} "
        "WHERE xmin = %s::text::xid",
        [xid],
    )[0]
    if not total:
        return "no rows"
    return f"{total} rows ({used} marked used, {children} with a parent)"


def worker_of(application_name: str) -> int | None:
    """The pid in ``soak-pid-<pid>``: how ``soak_settings`` names each process's connections."""
    prefix = "soak-pid-"
    return int(application_name[len(prefix) :]) if application_name.startswith(prefix) else None


def _wait_for_blocked_backend(dsn: str, blocker_pid: int, timeout: float = 15) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = query(
            dsn,
            "SELECT pid, application_name, backend_xid::text, "
            "wait_event_type || ':' || wait_event, query FROM pg_stat_activity "
            "WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND pid <> %s AND backend_xid IS NOT NULL",
            [blocker_pid],
        )
        if rows:
            pid, name, xid, wait, sql = rows[0]
            return {"pid": pid, "worker": worker_of(name), "xid": xid, "wait": wait, "query": sql}
        time.sleep(0.02)
    raise RuntimeError("the probe refresh never blocked on the locked row")


def kill_busy_workers(ctx: FaultContext, count: int = 2) -> Fault:
    """SIGKILL workers frozen inside a write transaction of the load (a refresh, preferably).

    A candidate is a worker whose backend has a transaction id (it has written).
    The worker is stopped (SIGSTOP) and the backend looked at again: only if
    the same transaction is still open is the worker killed, so the kill is
    really mid-transaction; otherwise it is resumed and another one is sought.
    """
    fault = Fault(f"SIGKILL {count} workers frozen inside a write transaction", time.time())
    killed = 0
    with psycopg.connect(ctx.dsn, autocommit=True, connect_timeout=5) as monitor:
        for _ in range(count):
            victim = _freeze_worker_in_write_transaction(ctx, monitor)
            if victim is None:
                fault.note("no worker caught inside a write transaction within 10 s")
                continue
            worker, xid, sql = victim
            os.kill(worker, signal.SIGKILL)
            killed_at, killed = time.monotonic(), killed + 1
            respawn = ctx.gunicorn.wait_for_replacement(worker, killed_at)
            outcome = xact_outcome(ctx.dsn, xid)
            fault.note(
                f"worker {worker} killed inside transaction {xid} (current statement "
                f"`{sql[:60]}...`): the transaction {outcome}; rows last written by it: "
                f"{written_by(ctx, xid)}; worker replaced after {respawn:.2f} s"
            )
    fault.check(
        "workers were killed mid-transaction (the table is checked for half states below)",
        killed == count,
        f"{killed}/{count}",
    )
    fault.t_end = time.time()
    return fault


_OPEN_WRITES = (
    "SELECT pid, application_name, backend_xid::text, query FROM pg_stat_activity "
    "WHERE datname = current_database() AND backend_xid IS NOT NULL "
    "AND backend_type = 'client backend' AND pid <> pg_backend_pid() "
    # A refresh's own statements first: marking the old pair used, inserting the new one.
    "ORDER BY (query LIKE 'INSERT%%' OR query LIKE '%%rotated_at%%') DESC"
)


def _freeze_worker_in_write_transaction(ctx: FaultContext, monitor, timeout: float = 10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid, name, xid, _ in monitor.execute(_OPEN_WRITES).fetchall():
            worker = worker_of(name)
            if worker is None or worker not in ctx.gunicorn.worker_pids():
                continue  # the soak process itself, or the purge command
            os.kill(worker, signal.SIGSTOP)
            time.sleep(0.05)  # what the worker had sent, the backend has now executed
            still = monitor.execute(
                "SELECT backend_xid::text, query FROM pg_stat_activity WHERE pid = %s", [pid]
            ).fetchone()
            if still is not None and still[0] == xid and still[1].strip().upper() != "COMMIT":
                return worker, xid, still[1]
            os.kill(worker, signal.SIGCONT)  # it finished meanwhile: let it go
        time.sleep(0.002)
    return None


# -- PostgreSQL ---------------------------------------------------------------------


def restart_postgres(ctx: FaultContext) -> Fault:
    """``pg_ctl restart -m fast`` on the private cluster, under the load."""
    fault = Fault("PostgreSQL restart (pg_ctl restart -m fast)", time.time())
    ctx.pg.restart_fast()
    fault.t_end = time.time()
    fault.note(f"the cluster was back after {fault.t_end - fault.t_start:.2f} s")
    return fault


def postgres_outage(ctx: FaultContext) -> Fault:
    """PostgreSQL stopped (``-m fast``) for a few seconds, with probes while it is down."""
    fault = Fault("PostgreSQL stopped (pg_ctl stop -m fast), probed, started again", 0)
    auth, api = ctx.probes["postgres"], ctx.api("postgres")
    warm, cold = ctx.prepared["postgres"]
    api.whoami(warm)  # validation entries in Redis; `cold` is never presented before
    fault.t_start = time.time()
    ctx.pg.stop("fast")
    probes = {
        "client_credentials login": api.client_credentials(auth["client_id"], auth["secret"]),
        "refresh": api.refresh(auth, warm),
        "whoami, pair cached in Redis": api.whoami(warm),
        "whoami, pair not cached": api.whoami(cold),
        "revocation endpoint": api.revoke(auth, cold.refresh, cold.jti),
    }
    for name, answer in probes.items():
        fault.note(f"{name}: {describe(answer)}")
    token = probes["client_credentials login"]
    fault.check(
        "token endpoint: 503 temporarily_unavailable with Retry-After",
        token.status == 503 and token.error == "temporarily_unavailable" and token.retry_after,
        describe(token),
    )
    cold_answer = probes["whoami, pair not cached"]
    fault.check(
        "bearer path, cold cache: 503 with Retry-After",
        cold_answer.status == 503 and cold_answer.retry_after,
        describe(cold_answer),
    )
    time.sleep(max(0.0, ctx.pg_down_seconds - (time.time() - fault.t_start)))
    ctx.pg.start()
    fault.t_end = time.time()
    fault.note(f"PostgreSQL was down {fault.t_end - fault.t_start:.1f} s")
    recovered = _time_to_first_200(
        lambda: api.client_credentials(auth["client_id"], auth["secret"])
    )
    fault.note(f"first 200 login {recovered:.2f} s after the cluster accepted connections")
    after = api.whoami(cold)
    fault.check(
        "the uncached pair works again once PostgreSQL is back",
        after.status == 200,
        describe(after),
    )
    api.close()
    return fault


def _time_to_first_200(request: Callable[[], Answer], timeout: float = 30) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if request().status == 200:
            return time.monotonic() - started
        time.sleep(0.1)
    return float("inf")


# -- Redis ---------------------------------------------------------------------------


def redis_outage(ctx: FaultContext) -> Fault:
    """Redis stopped: the bearer path falls back to the database; revocation still holds."""
    fault = Fault("Redis stopped, probed, restarted empty", 0)
    auth, api = ctx.probes["redis"], ctx.api("redis")
    (pair,) = ctx.prepared["redis"]
    before = api.whoami(pair)
    fault.note(f"before: whoami {describe(before)} (validation entries now in Redis)")
    fault.t_start = time.time()
    ctx.redis.stop()
    username, password = ctx.probe_user
    pairs_before = pairs_of(ctx, username)
    probes = [
        ("whoami, pair cached before the outage", api.whoami(pair), 200),
        ("revoke it (RFC 7009)", api.revoke(auth, pair.refresh, pair.jti), 200),
        ("whoami after the revocation", api.whoami(pair), 401),
        (
            "client_credentials login",
            api.client_credentials(auth["client_id"], auth["secret"]),
            200,
        ),
        ("password login", api.password(ctx.password_app, username, password), 200),
    ]
    if probes[4][1].status >= 500:
        fault.note(
            f"the failed password login wrote nothing: {username} has {pairs_of(ctx, username)} "
            f"pairs, as before ({pairs_before}); the traceback is under Server errors below"
        )
    fresh = probes[3][1].held
    if fresh is not None:
        probes.append(("refresh", api.refresh(auth, fresh), 200))
        probes.append(("logout", api.logout(fresh), 200))
        probes.append(("whoami after logout", api.whoami(fresh), 401))
    for name, answer, expected in probes:
        fault.note(f"{name}: {describe(answer)}")
        fault.check(f"Redis down, {name}: {expected}", answer.status == expected, describe(answer))
    time.sleep(max(0.0, ctx.redis_down_seconds - (time.time() - fault.t_start)))
    ctx.redis.start()
    fault.t_end = time.time()
    fault.note(f"Redis was down {fault.t_end - fault.t_start:.1f} s")
    after = api.whoami(pair)
    fault.check(
        "Redis back (empty): the pair revoked during the outage is refused",
        after.status == 401,
        describe(after),
    )
    api.close()
    return fault


def pairs_of(ctx: FaultContext, username: str) -> int:
    sql = (
        f"SELECT count(*) FROM {ctx.table} pair JOIN auth_user ON auth_user.id = pair.user_id "
        "WHERE auth_user.username = %s"
    )
    return query(ctx.dsn, sql, [username])[0][0]


# -- Schedule ---------------------------------------------------------------------------


#: Seconds of normal load between two faults, so that what clients see is told apart.
GAP = 5.0


def run_schedule(
    schedule: list[tuple[float, Callable[[FaultContext], Fault]]],
    ctx: FaultContext,
    t0: float,
    stop: threading.Event,
    faults: list[Fault],
) -> None:
    """Run each fault at its offset from ``t0``, and at least ``GAP`` s after the previous one."""
    not_before = t0
    for offset, inject in schedule:
        if stop.wait(max(0.0, t0 + offset - time.time(), not_before - time.time())):
            return
        try:
            faults.append(inject(ctx))
        except Exception as error:  # the soak goes on; the report shows the failure
            failed = Fault(inject.__name__, time.time(), time.time())
            failed.check("fault injected and probed", False, f"{type(error).__name__}: {error}")
            faults.append(failed)
        not_before = time.time() + GAP
