"""Soak run: the example project under load and faults on PostgreSQL + Redis (``make soak``).

What it does, bounded (``SOAK_SECONDS`` of load, 60 by default):

1. starts a *private* PostgreSQL cluster and a *private* Redis on their own
   ports (``soak_stack``; never the shared servers), migrates, creates users
   and clients and seeds old dead pairs for the purge to delete (``soak_world``);
2. serves the example project with gunicorn (4 sync workers);
3. runs the load (``soak_load``): 20 API clients x 3 servers sharing a pair
   and refreshing together inside the grace window, app users on the password
   grant, an admin revoking pairs and changing passwords, cron running
   ``purge_expired_tokens --older-than 30`` if the command exists, and a
   sampler counting each principal's live pairs from its own connection;
4. with ``SOAK_FAULTS=1`` (default) injects faults (``soak_faults``): a
   worker SIGKILLed inside a refresh transaction and others mid-transaction,
   ``pg_ctl restart -m fast``, PostgreSQL stopped for a few seconds, Redis
   stopped and restarted empty;
5. checks (``soak_checks``), from the table and the client-side history: no
   500; 503s are ``temporarily_unavailable`` with Retry-After; the cap never
   exceeded (samples, and intervals rebuilt from the table); every row
   consistent, no half-written refresh; no lost or duplicated pair; no token
   accepted after its revocation committed or after its expiry; reuse
   detection only on replays; every client recovered after the faults;
   the purge deleted what it should and nothing needed;
6. writes ``bench/SOAK_RESULTS.md`` (``soak_report``) and exits 1 if a check
   failed. Everything it started is stopped and removed at exit, also on
   SIGTERM/SIGINT or an exception.

Knobs: SOAK_SECONDS, SOAK_FAULTS, SOAK_CLIENTS (20), SOAK_SERVERS (3),
SOAK_WORKERS (4), SOAK_KEEP=1 (keep the work directory: logs, database),
SOAK_RESULTS (output path).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import resource
import secrets
import sys
import threading
import time
from collections import Counter
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
sys.path[:0] = [str(BENCH_DIR), str(REPO_DIR)]

import soak_checks as checks  # noqa: E402
import soak_faults as faults  # noqa: E402
import soak_load as load  # noqa: E402
import soak_report as report  # noqa: E402
import soak_world  # noqa: E402
from soak_stack import (  # noqa: E402
    Cleanup,
    Gunicorn,
    PrivatePostgres,
    PrivateRedis,
    free_port,
    make_workdir,
)

PURGE_OLDER_THAN_DAYS = 30
#: The load runs at least this long after the last fault, to see every client recover.
RECOVERY_SECONDS = 8.0


@dataclasses.dataclass(frozen=True)
class Config:
    seconds: float
    faults: bool
    clients: int
    servers: int
    workers: int
    keep: bool
    results: Path

    @classmethod
    def from_env(cls) -> Config:
        env = os.environ.get
        return cls(
            seconds=float(env("SOAK_SECONDS", "60")),
            faults=env("SOAK_FAULTS", "1") not in ("0", ""),
            clients=int(env("SOAK_CLIENTS", "20")),
            servers=int(env("SOAK_SERVERS", "3")),
            workers=int(env("SOAK_WORKERS", "4")),
            keep=env("SOAK_KEEP", "0") not in ("0", ""),
            results=Path(env("SOAK_RESULTS", str(BENCH_DIR / "SOAK_RESULTS.md"))),
        )


@dataclasses.dataclass
class Stack:
    workdir: Path
    pg: PrivatePostgres
    redis: PrivateRedis
    gunicorn: Gunicorn
    env: dict[str, str]


def start_stack(config: Config, cleanup: Cleanup) -> Stack:
    workdir = make_workdir(cleanup, config.keep)
    pg = PrivatePostgres(workdir, free_port(25432))
    pg.init_and_start(cleanup)
    redis = PrivateRedis(workdir, free_port(26379))
    cleanup.add("stop private Redis", redis.stop)
    redis.start()
    port = free_port(28080)
    env = {
        **os.environ,
        "DATABASE_URL": pg.url + "?connect_timeout=5",
        "CACHE_URL": redis.url,
        "TOKEN_LIFECYCLE_ISSUER": f"http://127.0.0.1:{port}/auth",
        "DJANGO_SETTINGS_MODULE": "soak_settings",
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(40),
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(BENCH_DIR), str(REPO_DIR), os.environ.get("PYTHONPATH")])
        ),
    }
    gunicorn = Gunicorn(port, config.workers, env, workdir / "gunicorn.log")
    return Stack(workdir, pg, redis, gunicorn, env)


def setup_django(stack: Stack) -> None:
    os.environ.update({k: v for k, v in stack.env.items() if k != "PYTHONPATH"})
    import django
    from django.core.management import call_command

    django.setup()
    # This process's own warnings (the admin's revocations while Redis is down) go to a file.
    handler = logging.FileHandler(stack.workdir / "soak-process.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logging.getLogger().handlers = [handler]
    call_command("migrate", verbosity=0)


# -- The run --------------------------------------------------------------------------------


@dataclasses.dataclass
class Observed:
    recorder: load.Recorder
    samples: load.CapSamples
    purge_runs: list[load.PurgeRun] | None
    purge_note: str
    faults: list[faults.Fault]
    t0: float
    t_stop: float
    load_average: tuple[float, float]  # 1-minute load average at the start and the end
    server_cpu: float  # CPU-seconds used by gunicorn (all workers)


def fault_schedule(seconds: float) -> list:
    return [
        (0.15 * seconds, faults.kill_mid_refresh),
        (0.25 * seconds, faults.kill_busy_workers),
        (0.38 * seconds, faults.restart_postgres),
        (0.48 * seconds, faults.postgres_outage),
        (0.66 * seconds, faults.redis_outage),
    ]


def run_load(config: Config, stack: Stack, world: soak_world.World) -> Observed:
    from token_lifecycle.models import TokenPair

    recorder, stop, samples = load.Recorder(), threading.Event(), load.CapSamples()
    base, threads = stack.gunicorn.base_url, []
    caps = {pk: policy.cap for pk, policy in world.policies.items()}
    table = TokenPair._meta.db_table

    def spawn(target, *args) -> threading.Thread:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        threads.append(thread)
        return thread

    spawn(load.run_sampler, stack.pg.url, table, caps, stop, samples)
    for partner in world.partners:
        for index in range(partner.servers):
            spawn(load.run_partner_server, partner, index, base, recorder, stop)
    for app, username in world.sessions:
        spawn(
            load.run_app_session,
            app,
            username,
            world.passwords,
            base,
            recorder,
            stop,
            load.Timing(),
        )
    admin = load.Admin(
        world.partners,
        world.load_client_pks,
        world.changeable_users,
        world.passwords,
        base,
        recorder,
    )
    spawn(admin.run, stop, 0.4)
    purge_runs, purge_note = start_cron(stack, stop, spawn)
    injected: list[faults.Fault] = []
    t0, load_before, fault_thread = time.time(), os.getloadavg()[0], None
    if config.faults:
        context = faults.FaultContext(
            pg=stack.pg,
            redis=stack.redis,
            gunicorn=stack.gunicorn,
            recorder=recorder,
            table=table,
            probes=world.probes,
            password_app=world.apps[1],
            probe_user=world.probe_user,
            cap=caps[world.probe_client_pk],
            prepared=world.prepared,
            pg_down_seconds=3,
            redis_down_seconds=6,
        )
        schedule = fault_schedule(config.seconds)
        fault_thread = spawn(faults.run_schedule, schedule, context, t0, stop, injected)
    time.sleep(config.seconds)
    if fault_thread is not None:
        # The load goes on until the faults are over, and long enough after to see recovery.
        fault_thread.join(timeout=180)
        last = max((fault.t_end for fault in injected), default=0.0)
        time.sleep(max(0.0, last + RECOVERY_SECONDS - time.time()))
    stop.set()
    t_stop, load_after = time.time(), os.getloadavg()[0]
    for thread in threads:
        thread.join(timeout=60)
    return Observed(
        recorder,
        samples,
        purge_runs,
        purge_note,
        injected,
        t0,
        t_stop,
        (load_before, load_after),
        gunicorn_cpu_seconds(stack.gunicorn),
    )


def gunicorn_cpu_seconds(gunicorn: Gunicorn) -> float:
    """CPU time of the master and every worker (killed ones included), once it has stopped."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    gunicorn.stop()  # the master reaps its workers, and we reap the master
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def start_cron(stack: Stack, stop: threading.Event, spawn):
    if not load.purge_command_exists():
        return None, ("`purge_expired_tokens` does not exist (yet): the cron thread was skipped.")
    runs: list[load.PurgeRun] = []
    command = load.purge_command(REPO_DIR, PURGE_OLDER_THAN_DAYS)
    spawn(load.run_cron, command, stack.env, REPO_DIR, 15.0, stop, runs)
    note = (
        f"Cron: `manage.py purge_expired_tokens --older-than {PURGE_OLDER_THAN_DAYS} "
        "--batch-size 500` every 15 s (first after 5 s). The retention keeps every pair the "
        "soak makes; the seeded pairs dead for 60 days are what it should delete."
    )
    return runs, note


# -- Checks ---------------------------------------------------------------------------------


def run_checks(observed: Observed, world: soak_world.World, stack: Stack) -> tuple[list, dict]:
    from token_lifecycle.models import TokenPair

    rows = checks.load_rows(stack.pg.url, TokenPair._meta.db_table)
    events, admin = observed.recorder.events, observed.recorder.admin
    windows = [(f.t_start, f.t_end) for f in observed.faults]
    caps = {pk: policy.cap for pk, policy in world.policies.items()}
    results = [
        checks.check_no_server_errors(events),
        checks.check_503s(events, windows, margin=3.0),
        checks.check_sampled_cap(observed.samples, caps),
        checks.check_interval_cap(rows, world.policies),
        checks.check_rows(rows, world.policies, world.seeded_purgeable),
        checks.check_rotation_atomic(rows),
        checks.check_token_responses(events, rows),
        checks.check_no_use_after_revocation(events, rows, admin),
        checks.check_no_use_after_expiry(events, rows),
        checks.check_reuse_detections(events, rows),
    ]
    if observed.faults:
        last = max(f.t_end for f in observed.faults)
        results.append(checks.check_everyone_recovered(events, last, observed.t_stop))
    results.append(check_purge(observed, world, rows))
    seeded = world.seeded_purgeable | world.seeded_kept
    seeded |= {held.jti for pairs in world.prepared.values() for held in pairs}
    facts = {
        "rows": len(rows),
        "unanswered": checks.unanswered_pairs(events, rows, seeded),
        "reasons": Counter(row.revoke_reason or "(live or expired)" for row in rows.values()),
    }
    return results, facts


def check_purge(observed: Observed, world: soak_world.World, rows: dict) -> checks.Check:
    name = "Purge under load: deletes the old dead pairs, keeps everything needed"
    if observed.purge_runs is None:
        return checks.Check(name + " (skipped)", True, observed.purge_note)
    succeeded = [run for run in observed.purge_runs if run.returncode == 0]
    left = world.seeded_purgeable & set(rows)
    missing = world.seeded_kept - set(rows)
    failed = [run for run in observed.purge_runs if run.returncode != 0]
    in_fault = [
        run
        for run in failed
        if any(
            f.t_start - 1 <= run.t_start + run.seconds and run.t_start <= f.t_end + 1
            for f in observed.faults
        )
    ]
    detail = (
        f"{len(observed.purge_runs)} runs, {len(succeeded)} succeeded, {len(failed)} failed "
        f"({len(in_fault)} during a fault); {len(world.seeded_purgeable) - len(left)} of "
        f"{len(world.seeded_purgeable)} purgeable seeded pairs deleted; {len(missing)} pairs "
        "that had to stay are missing"
    )
    passed = bool(succeeded) and not left and not missing and len(failed) == len(in_fault)
    evidence = [run.output[-300:] for run in failed if run not in in_fault][:3]
    return checks.Check(name, passed, detail, evidence)


# -- Main ---------------------------------------------------------------------------------------


def save_events(observed: Observed, path: Path) -> None:
    """The raw history, one JSON object a line (kept with SOAK_KEEP=1)."""
    with open(path, "w") as out:
        for event in observed.recorder.events:
            out.write(json.dumps(dataclasses.asdict(event)) + "\n")
        for action in observed.recorder.admin:
            out.write(json.dumps({"admin": dataclasses.asdict(action)}) + "\n")


def main() -> int:
    config = Config.from_env()
    cleanup = Cleanup()
    try:
        stack = start_stack(config, cleanup)
        setup_django(stack)
        world = soak_world.create_world(config.clients, config.servers)
        stack.gunicorn.start(cleanup)
        print(
            f"soak: gunicorn on {stack.gunicorn.base_url}, load for {config.seconds:g} s"
            f"{' with faults' if config.faults else ''}",
            flush=True,
        )
        observed = run_load(config, stack, world)
        print(f"soak: {len(observed.recorder.events)} requests; checking", flush=True)
        save_events(observed, stack.workdir / "events.jsonl")
        results, facts = run_checks(observed, world, stack)
        lines = report.run_markdown(config, stack, world, observed, results, facts)
        report.write_results(config.results, lines)
        for check in results:
            print(f"  {'PASS' if check.passed else 'FAIL'}  {check.name}: {check.detail}")
        print(
            f"soak: results in {config.results}"
            + (f"; work directory kept: {stack.workdir}" if config.keep else "")
        )
        return 0 if all(check.passed for check in results) else 1
    finally:
        from django.db import connections

        connections.close_all()
        cleanup.run()


if __name__ == "__main__":
    sys.exit(main())
