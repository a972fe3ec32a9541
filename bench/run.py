"""``make bench``: this app's per-request path and token endpoint beside its peers, in one run.

Peers: djangorestframework-simplejwt (``JWTAuthentication`` and the stateless
``JWTStatelessUserAuthentication``, RS256, refresh rotation + blacklist),
django-oauth-toolkit (``OAuth2Authentication``, its token endpoint) and
django-rest-knox (``TokenAuthentication``, its login). Everything runs in one
invocation on this machine, so the ratios compare like with like.

Stages, each in its own process (Django is configured once per process):

- ``fixtures.py``: a fresh database per stack, migrated, with the same users
  and clients for every package;
- ``micro.py``: authenticate() warm and cold, revocation, token endpoints,
  profiles (per stack);
- ``remote.py``: a resource server (``token_lifecycle.remote``) beside simplejwt's
  stateless class, warm and with one introspection round trip (per stack);
- ``http_load.py``: gunicorn (2 workers) + wrk, the whoami view of each
  package and the AllowAny baseline (per stack);
- ``scale.py``: PostgreSQL with 10k and with 1M pairs bulk-loaded in SQL, one
  database each, measured in turns.

Stacks: ``sqlite-locmem`` (SQLite + local-memory cache) and ``postgres-redis``
(PostgreSQL at 127.0.0.1:5432 + Redis at 127.0.0.1:6379). Databases are
created as ``bench_tl_*`` and dropped at the end; Redis database 9 (and 10,
for the second database of the scale stage) is used and flushed, nothing else.

Then ``report.py`` writes bench/RESULTS.md and bench/ratios.png.

Knobs (environment):

- ``BENCH_QUICK=1``: a few minutes instead of ~20 (fewer rounds, 3 s HTTP
  runs, 100k instead of 1M pairs); results are marked as such;
- ``BENCH_STACKS=sqlite-locmem,postgres-redis``: which stacks;
- ``BENCH_SKIP=http,scale``: stages to leave out (micro, remote, http, scale);
- ``BENCH_HTTP_SECONDS`` (6), ``BENCH_HTTP_REPEATS`` (5),
  ``BENCH_HTTP_CONNECTIONS`` (8): the HTTP runs;
- ``BENCH_SCALE_SIZES=10000,1000000``: the pair counts of the scale stage;
- ``BENCH_WORKDIR``: keep the work files (raw JSON results, SQLite file) there
  instead of a temporary directory.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    BENCH_DIR,
    PG_PREFIX,
    REDIS_URL,
    REPO_DIR,
    STACKS,
    machine_info,
    quick,
    stack_env,
)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


# -- Services -----------------------------------------------------------------


def postgres_admin():
    import psycopg

    return psycopg.connect(
        "postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True, connect_timeout=5
    )


def postgres_available() -> str | None:
    """None if PostgreSQL answers, else why not."""
    try:
        with postgres_admin() as connection:
            connection.execute("SELECT 1")
        return None
    except Exception as error:
        return f"PostgreSQL at 127.0.0.1:5432 not answering ({error.__class__.__name__})"


def redis_available() -> str | None:
    try:
        import redis

        redis.Redis.from_url(REDIS_URL, socket_timeout=5).ping()
        return None
    except Exception as error:
        return f"Redis at 127.0.0.1:6379 not answering ({error.__class__.__name__})"


def recreate_database(name: str) -> None:
    assert name.startswith(PG_PREFIX), name  # never anyone else's database
    with postgres_admin() as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')


def drop_database(name: str) -> None:
    assert name.startswith(PG_PREFIX), name
    with postgres_admin() as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def flush_redis(*urls: str) -> None:
    """FLUSHDB of our own Redis database numbers (9, and 10 for the scale stage) only."""
    import redis

    for url in urls or (REDIS_URL,):
        redis.Redis.from_url(url).flushdb()


# -- Stages -------------------------------------------------------------------


def run_stage(script: str, env: dict[str, str], *args: str) -> None:
    full_env = {
        **os.environ,
        **env,
        "PYTHONPATH": os.pathsep.join([str(BENCH_DIR), str(REPO_DIR)]),
    }
    subprocess.run(
        [sys.executable, str(BENCH_DIR / script), *args], env=full_env, check=True, cwd=REPO_DIR
    )


def write_simplejwt_key(workdir: Path) -> None:
    """One RSA key for simplejwt, shared by every process of the run (gunicorn included)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (workdir / "simplejwt_rs256.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def prepare_stack(stack: str, workdir: Path) -> dict[str, str]:
    env = stack_env(stack, workdir)
    if stack == "postgres-redis":
        recreate_database(f"{PG_PREFIX}main")
        flush_redis()
    else:
        (workdir / "bench.sqlite3").unlink(missing_ok=True)
    run_stage("fixtures.py", env)
    return env


def main() -> int:
    started = time.time()
    skip = {name.strip() for name in os.environ.get("BENCH_SKIP", "").split(",") if name.strip()}
    stacks = [
        name.strip()
        for name in os.environ.get("BENCH_STACKS", ",".join(STACKS)).split(",")
        if name.strip()
    ]
    workdir = Path(os.environ.get("BENCH_WORKDIR") or tempfile.mkdtemp(prefix="bench_tl_"))
    workdir.mkdir(parents=True, exist_ok=True)
    raw = workdir / "results"
    raw.mkdir(exist_ok=True)
    write_simplejwt_key(workdir)
    log(f"work directory {workdir}; stacks {stacks}; skipping {sorted(skip) or 'nothing'}")

    meta = {
        "machine": machine_info(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "quick": quick(),
        "command": "make bench",
        "knobs": {
            key: value
            for key, value in os.environ.items()
            if key.startswith("BENCH_") and key != "BENCH_WORKDIR"
        },
        "skipped": {},
        #: Load average (1 min) when each stage started: this machine is shared.
        "load": {},
    }

    def stage(name: str) -> None:
        meta["load"][name] = round(os.getloadavg()[0], 1)
        log(f"{name} (load average {meta['load'][name]})")

    unavailable = {}
    if "postgres-redis" in stacks or "scale" not in skip:
        reason = postgres_available() or redis_available()
        if reason:
            unavailable["postgres-redis"] = reason
            log(f"PostgreSQL/Redis stages skipped: {reason}")

    for stack in stacks:
        if stack in unavailable:
            meta["skipped"][stack] = unavailable[stack]
            continue
        log(f"{stack}: creating the database and fixtures")
        env = prepare_stack(stack, workdir)
        if "micro" not in skip:
            stage(f"{stack}: in-process measurements")
            run_stage("micro.py", env, str(raw / f"micro-{stack}.json"))
        if "remote" not in skip:
            stage(f"{stack}: a resource server's cost per request")
            run_stage("remote.py", env, str(raw / f"remote-{stack}.json"))
        if "http" not in skip:
            stage(f"{stack}: HTTP under gunicorn")
            run_stage("http_load.py", env, str(raw / f"http-{stack}.json"))
        if stack == "postgres-redis":
            drop_database(f"{PG_PREFIX}main")
            flush_redis()

    if "scale" not in skip:
        if "postgres-redis" in unavailable:
            meta["skipped"]["scale"] = unavailable["postgres-redis"]
        else:
            stage("scale: PostgreSQL, table sizes taking turns")
            import scale

            names = [scale.database_name(size) for size in scale.sizes()]
            redis_urls = [scale.redis_url(index) for index in range(len(names))]
            flush_redis(*redis_urls)
            try:
                for name in names:
                    recreate_database(name)
                    run_stage("fixtures.py", stack_env("postgres-redis", workdir, pg_name=name))
                run_stage(
                    "scale.py", stack_env("postgres-redis", workdir), str(raw / "scale.json")
                )
            finally:
                for name in names:
                    drop_database(name)
                flush_redis(*redis_urls)
    for name in ("micro", "remote", "http", "scale"):
        if name in skip:
            meta["skipped"][name] = "left out with BENCH_SKIP"

    meta["seconds"] = time.time() - started
    (raw / "meta.json").write_text(json.dumps(meta, indent=2, default=str))
    log("writing bench/RESULTS.md and bench/ratios.png")
    from report import write_report

    write_report(raw)
    if not os.environ.get("BENCH_WORKDIR"):
        (workdir / "bench.sqlite3").unlink(missing_ok=True)
    log(f"done in {meta['seconds'] / 60:.1f} min; raw results in {raw}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except subprocess.CalledProcessError as error:
        print(f"bench stage failed: {error}", file=sys.stderr)
        sys.exit(1)
