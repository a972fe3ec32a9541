"""Does our cost grow with the number of pairs in the table? PostgreSQL, 10k vs 1M pairs.

Two databases, one per size (``bench_tl_scale_<size>``, created by run.py
with the usual fixtures), each served by a worker process of its own
(``python bench/scale.py worker``) on its own Redis database number. The
workers take turns, round by round, so that both sizes are measured in the
same minutes: on this shared machine, measuring one size after the other
would compare two different loads rather than two table sizes.

Other clients' pairs are bulk-loaded with ``INSERT ... SELECT
generate_series`` (not the ORM): 100 other clients, 10,000 other users,
every pair live, random UUID keys (so the primary-key index is as spread as
it gets), then ``ANALYZE``. Then, for ours:

- authenticate() warm (no query), validation cache cleared (one primary-key
  query), fresh pair never seen;
- refresh at the cap and below it, and a client_credentials issue, for a
  principal whose own pairs are few: what other clients' live pairs must not
  slow down (the principal's live pairs come from a partial index).

``python bench/scale.py OUT.json`` is the coordinator; the environment names
the sizes (``BENCH_SCALE_SIZES``, default ``10000,1000000``; quick:
``10000,100000``) and run.py passes each worker's database and cache.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from common import (
    BENCH_DIR,
    PG_PREFIX,
    PG_SERVER,
    REPO_DIR,
    calibrate,
    count_queries,
    quick,
    setup_django,
    summary,
    write_json,
)


def sizes() -> list[int]:
    default = "10000,100000" if quick() else "10000,1000000"
    return [int(size) for size in os.environ.get("BENCH_SCALE_SIZES", default).split(",")]


def database_name(size: int) -> str:
    return f"{PG_PREFIX}scale_{size}"


def redis_url(index: int) -> str:
    """Redis database 9 for the first size, 10 for the second, and so on."""
    return f"redis://127.0.0.1:6379/{9 + index}"


USERS_SQL = """
INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, email,
                       is_staff, is_active, date_joined)
SELECT '!', false, 'scale-' || i, '', '', '', false, true, now()
FROM generate_series(1, 10000) i;
"""

# Live pairs of other clients, numbered %(first)s..%(last)s.
PAIRS_SQL = """
WITH cl AS (SELECT array_agg(id ORDER BY id) AS a FROM token_lifecycle_client
            WHERE name LIKE 'scale-%%'),
     us AS (SELECT array_agg(id ORDER BY id) AS a FROM auth_user WHERE username LIKE 'scale-%%')
INSERT INTO token_lifecycle_tokenpair (id, family_id, refresh_token_digest, scope, issued_at,
                                       access_expires_at, refresh_expires_at, live_until,
                                       revoke_reason, client_id, user_id)
SELECT gen_random_uuid(), gen_random_uuid(),
       encode(sha256(convert_to('scale-' || i, 'UTF8')), 'hex'), '',
       now() - (i %% 86400) * interval '1 second', now() + interval '14 days',
       now() + interval '29 days', now() + interval '29 days', '',
       cl.a[1 + i %% 100], us.a[1 + (i / 7) %% 10000]
FROM generate_series(%(first)s, %(last)s) i, cl, us
"""


# -- Worker ---------------------------------------------------------------------------


def load_pairs(size: int) -> dict:
    """Bulk-load ``size`` live pairs of other clients; the table's row count and size."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    from token_lifecycle.models import Client

    started = time.perf_counter()
    owner = get_user_model().objects.get(username="owner")
    # The 100 other clients through the ORM: every column of the model gets its default.
    Client.objects.bulk_create(
        Client(name=f"scale-{i}", client_id=f"scale-{i}", owner=owner, grant_types="password")
        for i in range(1, 101)
    )
    with connection.cursor() as cursor:
        cursor.execute(USERS_SQL)
        cursor.execute(PAIRS_SQL, {"first": 1, "last": size})
        cursor.execute("ANALYZE token_lifecycle_tokenpair")
        cursor.execute(
            "SELECT count(*), pg_size_pretty(pg_total_relation_size('token_lifecycle_tokenpair'))"
            " FROM token_lifecycle_tokenpair"
        )
        rows, table_size = cursor.fetchone()
    return {"rows": rows, "size": table_size, "load_seconds": time.perf_counter() - started}


def worker() -> None:
    """Load, prepare the cases, then run one round of each whenever told to ("round")."""
    setup_django()
    from fixtures import load
    from micro import AuthBench, EndpointBench, database_version

    facts = {**load_pairs(int(os.environ["BENCH_SCALE_SIZE"])), "database": database_version()}
    fixtures = load()
    auth_bench = AuthBench(fixtures)
    auth_bench.check()  # every package authenticates once: ours is warm from here on
    endpoints = EndpointBench(fixtures)
    auth, header = auth_bench.packages["ours"]
    warm = auth_bench.case("ours: warm", auth, header)
    queries = {"ours: warm": count_queries(lambda: auth.authenticate(auth_bench.request(header)))}
    cold, cold_queries = auth_bench.cold_cases()
    queries.update(cold_queries)
    issues = [case for case in endpoints.refresh_cases() if case.name.startswith("ours")]
    issues.append(endpoints.client_credentials_cases()[0])
    queries.update(endpoints.prime(issues))
    calibrate([warm], round_seconds=0.2, min_calls=20)
    calibrate(issues, round_seconds=0.1, max_calls=20, warmup_calls=0)
    cases = [warm, *cold, *issues]
    print(json.dumps({"facts": facts, "queries": queries}), flush=True)
    for line in sys.stdin:
        if line.strip() != "round":
            break
        means = {case.name: case.run_round(case.calls_per_round) for case in cases}
        cpu = {case.name: case.round_cpu[-1] for case in cases}
        print(json.dumps({"wall": means, "cpu": cpu}), flush=True)


# -- Coordinator ----------------------------------------------------------------------


class Worker:
    def __init__(self, size: int, index: int) -> None:
        env = {
            **os.environ,
            "BENCH_DATABASE_URL": f"{PG_SERVER}/{database_name(size)}",
            "BENCH_CACHE_URL": redis_url(index),
            "BENCH_SCALE_SIZE": str(size),
            "PYTHONPATH": os.pathsep.join([str(BENCH_DIR), str(REPO_DIR)]),
        }
        self.size = size
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "worker"],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO_DIR,
        )

    def read(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"scale worker for {self.size:,} pairs ended")
        return json.loads(line)

    def round(self) -> dict:
        self.process.stdin.write("round\n")
        self.process.stdin.flush()
        return self.read()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait(timeout=60)


def main() -> None:
    out = Path(sys.argv[1])
    rounds = 3 if quick() else 11
    workers = [Worker(size, index) for index, size in enumerate(sizes())]
    results: dict = {"sizes": {}}
    try:
        for worker_ in workers:  # loads one after the other
            print(f"[scale] loading {worker_.size:,} pairs", flush=True)
            ready = worker_.read()
            results["sizes"][str(worker_.size)] = {**ready["facts"], "queries": ready["queries"]}
            print(
                f"[scale] {ready['facts']['rows']:,} pairs ({ready['facts']['size']}) in "
                f"{ready['facts']['load_seconds']:.0f} s",
                flush=True,
            )
        samples = {worker_.size: [] for worker_ in workers}
        for index in range(rounds):
            order = workers if index % 2 == 0 else workers[::-1]
            for worker_ in order:
                samples[worker_.size].append(worker_.round())
        print(f"[scale] {rounds} rounds each, sizes taking turns", flush=True)
    finally:
        for worker_ in workers:
            worker_.close()
    for size, rows in samples.items():
        entry = results["sizes"][str(size)]
        entry["measurements"] = {
            name: {
                **summary([row["wall"][name] for row in rows], 1e6),
                "cpu_median": summary([row["cpu"][name] for row in rows], 1e6)["median"],
                "queries": entry["queries"][name],
            }
            for name in rows[0]["wall"]
        }
    write_json(out, results)


if __name__ == "__main__":
    if sys.argv[1:] == ["worker"]:
        worker()
    else:
        main()
