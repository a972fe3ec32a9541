"""Requests per second of each package's whoami view under gunicorn, beside AllowAny.

Run by run.py as ``python bench/http_load.py OUT.json`` with a stack in the
environment. Starts gunicorn (``bench_project.wsgi``, 2 sync workers, the
default worker class, access log off) on a free loopback port, then loads
each view with the same tool, connection count and duration:

- ``wrk`` (Debian's package) when present: ``-t1 -c8 -d6s`` with the
  package's ``Authorization`` header. If it is missing and this runs as root
  with apt-get, ``apt-get install -y wrk`` is tried once;
- otherwise a bounded Python load generator (``N`` threads, each a loop of
  ``http.client`` requests until the duration ends).

Each view gets a 2 s warm-up (gunicorn workers fill their caches), then
``BENCH_HTTP_REPEATS`` runs (5) of ``BENCH_HTTP_SECONDS`` (6 s), views
interleaved run by run: on a shared machine, more and shorter interleaved runs
give steadier medians than a few long ones. The median requests/s is compared
with AllowAny's (the same view, no authentication): that ratio is what a
package's authentication costs a real request. Every response must be 200:
non-2xx answers are counted and shown.

This machine is shared: requests/s move with other people's load. The server
CPU time per request (gunicorn workers, plus the PostgreSQL backends serving
them) is also recorded: it moves much less, and shows what each package's
authentication costs the server whatever the load.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from common import BENCH_DIR, REPO_DIR, quick, setup_django, write_json

STACK = os.environ.get("BENCH_STACK", "sqlite-locmem")
SECONDS = float(os.environ.get("BENCH_HTTP_SECONDS", "3" if quick() else "6"))
REPEATS = int(os.environ.get("BENCH_HTTP_REPEATS", "1" if quick() else "5"))
CONNECTIONS = int(os.environ.get("BENCH_HTTP_CONNECTIONS", "8"))
WORKERS = 2
WARMUP_SECONDS = 2.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def find_wrk() -> str | None:
    found = shutil.which("wrk")
    if found or os.environ.get("BENCH_NO_APT"):
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("wrk not found; trying apt-get install -y wrk", flush=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "wrk"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=300,
            check=False,
        )
    return shutil.which("wrk")


def tokens(port: int) -> dict[str, str]:
    """One Authorization header per package, for alice, issued for this host."""
    from fixtures import dot_tokens, knox_token, load, ours_pair, simplejwt_tokens

    fixtures = load()
    alice = fixtures.user("alice")
    issuer = f"http://127.0.0.1:{port}/auth"  # what issuer_for() derives from the Host header
    _, simplejwt_access = simplejwt_tokens(alice)
    return {
        "allowany": "",
        "ours": "Bearer " + ours_pair(fixtures.client("conf"), alice, issuer).access_token,
        "simplejwt": f"Bearer {simplejwt_access}",
        "simplejwt-stateless": f"Bearer {simplejwt_access}",
        "dot": "Bearer " + dot_tokens(alice, fixtures.application("pub_password"))[1],
        "knox": "Token " + knox_token(alice),
    }


class Server:
    """gunicorn serving bench_project on 127.0.0.1:port; stopped on exit."""

    def __init__(self, port: int) -> None:
        self.port = port
        gunicorn = Path(sys.executable).parent / "gunicorn"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(BENCH_DIR), str(REPO_DIR)])}
        self.process = subprocess.Popen(
            [
                str(gunicorn),
                "bench_project.wsgi:application",
                *("--workers", str(WORKERS), "--bind", f"127.0.0.1:{port}"),
                *("--log-level", "warning", "--backlog", "2048", "--timeout", "60"),
            ],
            env=env,
            cwd=REPO_DIR,
        )

    def __enter__(self) -> Server:
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if get(self.port, "/api/whoami/allowany/", "")[0] == 200:
                    return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("gunicorn did not start")

    def __exit__(self, *exc) -> None:
        self.stop()

    def worker_pids(self) -> list[int]:
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(fields[1]) == self.process.pid:
                    pids.append(int(entry.name))
        return pids

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """User + system CPU time of each of these processes that still exists."""
    found = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        found[pid] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return found


def cpu_used(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds used between two snapshots; a process started in between counts whole."""
    return sum(value - before.get(pid, 0.0) for pid, value in after.items())


def database_backends() -> list[int]:
    """PostgreSQL backends serving this benchmark's database (the workers' connections)."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid()"
        )
        return [row[0] for row in cursor.fetchall()]


def get(port: int, path: str, header: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path, headers={"Authorization": header} if header else {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def run_wrk(wrk: str, port: int, path: str, header: str, seconds: float) -> dict:
    command = [wrk, "-t1", f"-c{CONNECTIONS}", f"-d{max(1, round(seconds))}s", "--latency"]
    if header:
        command += ["-H", f"Authorization: {header}"]
    output = subprocess.run(
        [*command, f"http://127.0.0.1:{port}{path}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    requests = int(re.search(r"(\d+) requests in", output).group(1))
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(r"Socket errors:.*", output)
    p50 = re.search(r"50%\s+([\d.]+\w+)", output)
    return {
        "rps": rate,
        "requests": requests,
        "non_2xx": int(bad.group(1)) if bad else 0,
        "socket_errors": errors.group(0) if errors else "",
        "p50": p50.group(1) if p50 else "",
    }


def run_python(port: int, path: str, header: str, seconds: float) -> dict:
    """Fallback load generator: CONNECTIONS threads, each sending requests until time is up."""
    deadline = time.perf_counter() + seconds
    counts = [0] * CONNECTIONS
    bad = [0] * CONNECTIONS

    def worker(index: int) -> None:
        while time.perf_counter() < deadline:
            status, _ = get(port, path, header)
            counts[index] += 1
            bad[index] += status != 200

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(CONNECTIONS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return {
        "rps": sum(counts) / elapsed,
        "requests": sum(counts),
        "non_2xx": sum(bad),
        "socket_errors": "",
        "p50": "",
    }


def main() -> None:
    out = Path(sys.argv[1])
    setup_django()
    port = free_port()
    headers = tokens(port)
    wrk = find_wrk()
    tool = (
        f"wrk ({subprocess.run([wrk, '-v'], capture_output=True, text=True).stdout.split()[1]})"
        if wrk
        else "Python load generator (threads + http.client): wrk not available"
    )
    print(f"[{STACK}] HTTP with {tool}: {REPEATS} x {SECONDS:g} s per view", flush=True)

    def load(path: str, header: str, seconds: float) -> dict:
        if wrk:
            return run_wrk(wrk, port, path, header, seconds)
        return run_python(port, path, header, seconds)

    runs: dict[str, list[dict]] = {name: [] for name in headers}
    checks = {}
    with Server(port) as server:
        for name, header in headers.items():
            status, body = get(port, f"/api/whoami/{name}/", header)
            checks[name] = {"status": status, "body": body[:200].decode(errors="replace")}
            if status != 200:
                raise RuntimeError(f"{name}: {status} {body[:200]!r}")
            load(f"/api/whoami/{name}/", header, WARMUP_SECONDS)
        names = list(headers)
        for repeat in range(REPEATS):
            shift = repeat % len(names)
            for name in names[shift:] + names[:shift]:
                # Server-side CPU per request: the workers, plus on PostgreSQL the
                # backends serving them (Redis is shared with others: not counted).
                before = cpu_seconds(server.worker_pids() + database_backends())
                result = load(f"/api/whoami/{name}/", headers[name], SECONDS)
                after = cpu_seconds(server.worker_pids() + database_backends())
                result["cpu_us_per_request"] = (
                    cpu_used(before, after) / max(result["requests"], 1) * 1e6
                )
                result["loadavg"] = os.getloadavg()[0]
                runs[name].append(result)
                print(
                    f"  {name:22s} {result['rps']:8.1f} req/s"
                    f" {result['cpu_us_per_request']:7.0f} CPU us/request",
                    flush=True,
                )

    results = {}
    for name, samples in runs.items():
        rates = [sample["rps"] for sample in samples]
        results[name] = {
            "median": statistics.median(rates),
            "cpu_us_per_request": statistics.median(
                sample["cpu_us_per_request"] for sample in samples
            ),
            "min": min(rates),
            "max": max(rates),
            "runs": samples,
            "non_2xx": sum(sample["non_2xx"] for sample in samples),
            "check": checks[name],
        }
    write_json(
        out,
        {
            "stack": STACK,
            "tool": tool,
            "workers": WORKERS,
            "connections": CONNECTIONS,
            "seconds": SECONDS,
            "repeats": REPEATS,
            "views": results,
        },
    )


if __name__ == "__main__":
    main()
