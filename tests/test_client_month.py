"""A deployment of 20 workers calling the example project for a simulated month.

Each worker has its own ``TokenAuth`` and ``httpx.Client``, as separate
servers would. In each round (every 6 simulated hours; every day for the
processes and for the comparison) all 20 call ``GET /api/whoami/`` at once,
released together by a barrier, so the proactive refresh at 13.5 days (15 days
minus the 10% margin) finds all of them due at the same instant. After each
round the client's live pairs are counted in the database.

- **Shared store**: the whole deployment holds one pair and makes one refresh
  per rotation; at most 2 pairs are live (the new one, and the old one whose
  access token has 1.5 days left), no request ever meets a 401.
- **Without it** (each worker its own memory store): 20 logins against a cap of
  10 evict the oldest pairs while their workers still use them; each evicted
  worker meets a 401, logs in again and evicts someone else, all month long.

Time: the threaded variants freeze the whole process with freezegun, server
and client alike (the client reads ``time.time()`` at each call, so it needs
no injected clock). The process variant cannot share freezegun with its
children: the server runs under freezegun here and each child worker is given
the simulated instant by an injected ``clock``, sent with each round.

This module imports nothing of Django at the top: the process workers import
it (multiprocessing, spawn) and run the client only, as a client service would.
The figures are printed; see them with ``pytest -rP tests/test_client_month.py``.

On SQLite the test database is a file (see ``tests/conftest.py``): each of the
live server's request threads has its own connection, as in a deployment.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import socket
import sys
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs

import httpx
import pytest

from token_lifecycle.client import (
    FileTokenStore,
    MemoryTokenStore,
    TokenAuth,
    TokenClientError,
    TokenStore,
)

WORKERS = 20
MONTH = timedelta(days=30)
DAY = timedelta(days=1)
#: Rounds of the threaded shared-store month, and of the process month (processes cost more).
STEP = timedelta(hours=6)
PROCESS_STEP = DAY
T0 = datetime(2031, 1, 6, tzinfo=timezone.utc)
#: The example project's MAX_PAIRS_PER_CLIENT (the default).
MAX_PAIRS = 10
#: Refreshes expected in the month: the pair is due 13.5 days after its issue (15 days
#: minus 10%), refreshed at the first round after that, twice in 30 days.
ROTATIONS = 2
#: Seconds after which a test gives up waiting: a failure guard, never a speed assertion.
GUARD = 60.0


@dataclasses.dataclass
class Figures:
    """What a simulated month cost, as reported in the README."""

    requests: int = 0
    #: 401 answers the auth objects received (each then renewed and retried once).
    unauthorized: int = 0
    #: Requests whose final answer was not 200, or that raised.
    failed: int = 0
    logins: int = 0
    refreshes: int = 0
    peak_live_pairs: int = 0
    live_pairs_at_end: int = 0
    pairs_issued: int = 0
    evicted: int = 0

    def add(self, counts: Counter) -> None:
        self.unauthorized += counts["401"]
        self.logins += counts["client_credentials"]
        self.refreshes += counts["refresh_token"]

    def show(self, title: str) -> None:
        print(f"\n{title}")
        for field in dataclasses.fields(self):
            print(f"  {field.name:18} {getattr(self, field.name)}")


class Tally:
    """Thread-safe counts of token requests by grant type and of 401 answers, via httpx hooks."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def count(self, name: str) -> None:
        with self._lock:
            self.counts[name] += 1

    def on_token_request(self, request: httpx.Request) -> None:
        self.count(parse_qs(request.content.decode())["grant_type"][0])

    def on_api_response(self, response: httpx.Response) -> None:
        if response.status_code == 401:
            self.count("401")


def _no_delay() -> httpx.HTTPTransport:
    """Small writes go out at once: without it each request waits ~40 ms for a delayed ACK."""
    return httpx.HTTPTransport(socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])


class Worker:
    """One server of the deployment: its own auth object and HTTP client."""

    def __init__(self, base_url: str, client_id: str, secret: str, store: TokenStore, **auth):
        self.tally = Tally()
        token_client = httpx.Client(
            timeout=GUARD,
            transport=_no_delay(),
            event_hooks={"request": [self.tally.on_token_request]},
        )
        self.auth = TokenAuth(
            f"{base_url}/auth/token/",
            client_id,
            secret,
            store=store,
            token_client=token_client,
            **auth,
        )
        self.api = httpx.Client(
            base_url=base_url,
            auth=self.auth,
            timeout=GUARD,
            transport=_no_delay(),
            event_hooks={"response": [self.tally.on_api_response]},
        )

    def call(self) -> str:
        """One API request; its outcome: ``"200"``, another status, or the exception's name."""
        try:
            return str(self.api.get("/api/whoami/").status_code)
        except TokenClientError as error:
            return type(error).__name__

    def close(self) -> None:
        self.api.close()
        self.auth.close()


# -- The database side (imports Django, so only inside the tests) -----------------------


def live_pairs(client) -> int:
    from django.utils import timezone as django_timezone

    from token_lifecycle.models import TokenPair

    return TokenPair.objects.live(django_timezone.now()).filter(client=client).count()


def finish(figures: Figures, client) -> Figures:
    from token_lifecycle.models import TokenPair

    pairs = TokenPair.objects.filter(client=client)
    figures.live_pairs_at_end = live_pairs(client)
    figures.pairs_issued = pairs.count()
    figures.evicted = pairs.filter(revoke_reason="evicted").count()
    return figures


def refresh_tokens_used_more_than_once(client) -> list:
    from django.db.models import Count

    from token_lifecycle.models import TokenPair

    children = (
        TokenPair.objects.filter(client=client, parent__isnull=False)
        .values("parent")
        .annotate(n=Count("id"))
    )
    return [row for row in children if row["n"] > 1]


@pytest.fixture
def server(live_server, monkeypatch):
    """``live_server`` answering without Nagle's delay, with a backlog for 20 connections.

    Django's test server writes a response in several small writes: on a kept-alive
    connection each response would wait ~40 ms for the client's delayed ACK.
    """
    handler = live_server.thread.httpd.RequestHandlerClass
    monkeypatch.setattr(handler, "disable_nagle_algorithm", True)
    live_server.thread.httpd.socket.listen(4 * WORKERS)
    return live_server


def simulate_with_threads(server, client, secret, stores: list[TokenStore], step) -> Figures:
    """A month of rounds ``step`` apart; in each, every worker makes one request at once."""
    from freezegun import freeze_time

    figures, outcomes = Figures(), Counter()
    workers = [Worker(server.url, client.client_id, secret, store) for store in stores]
    try:
        with freeze_time(T0) as frozen, ThreadPoolExecutor(len(workers)) as pool:
            for now in rounds(step):
                frozen.move_to(now)
                barrier = threading.Barrier(len(workers))

                def call(worker: Worker, barrier=barrier) -> str:
                    barrier.wait(GUARD)
                    return worker.call()

                outcomes.update(pool.map(call, workers, timeout=GUARD))
                figures.peak_live_pairs = max(figures.peak_live_pairs, live_pairs(client))
            finish(figures, client)
    finally:
        for worker in workers:
            worker.close()
    figures.requests = sum(outcomes.values())
    figures.failed = figures.requests - outcomes["200"]
    for worker in workers:
        figures.add(worker.tally.counts)
    return figures


def hours(step: timedelta) -> int:
    return int(step / timedelta(hours=1))


def rounds(step: timedelta) -> list[datetime]:
    return [T0 + n * step for n in range(MONTH // step + 1)]


def assert_one_pair_for_the_deployment(figures: Figures, client, step: timedelta) -> None:
    assert figures.requests == WORKERS * len(rounds(step))
    assert figures.failed == 0
    assert figures.unauthorized == 0
    assert figures.logins == 1
    assert figures.refreshes == ROTATIONS
    assert figures.pairs_issued == 1 + ROTATIONS
    assert figures.evicted == 0
    assert figures.peak_live_pairs == 2  # the new pair, and the old one's last 1.5 days
    assert figures.live_pairs_at_end <= 2
    assert refresh_tokens_used_more_than_once(client) == []


@pytest.mark.django_db(transaction=True)
def test_twenty_threads_sharing_a_store_hold_one_pair_all_month(server, make_client):
    client, secret = make_client("deployment", grant_types="client_credentials")
    shared = MemoryTokenStore()
    figures = simulate_with_threads(server, client, secret, [shared] * WORKERS, STEP)
    figures.show(f"20 workers (threads), one shared store, a round every {hours(STEP)} h")
    assert_one_pair_for_the_deployment(figures, client, STEP)


@pytest.mark.django_db(transaction=True)
def test_without_a_shared_store_twenty_workers_fight_the_cap(server, make_client):
    """The same month with and without the shared store (a round a day: the thrash is slow).

    Two clients, so that the two deployments have a cap each.
    """
    shared_client, shared_secret = make_client("shared", grant_types="client_credentials")
    alone_client, alone_secret = make_client("alone", grant_types="client_credentials")
    shared = simulate_with_threads(
        server, shared_client, shared_secret, [MemoryTokenStore()] * WORKERS, DAY
    )
    alone = simulate_with_threads(
        server, alone_client, alone_secret, [MemoryTokenStore() for _ in range(WORKERS)], DAY
    )
    shared.show("20 workers (threads), one shared store, a round a day")
    alone.show("20 workers (threads), each its own store, a round a day")

    assert_one_pair_for_the_deployment(shared, shared_client, DAY)
    # The cap holds on the server; the workers pay for it. Twenty logins for ten
    # places evict pairs still in use: each evicted worker meets a 401, logs in
    # again and evicts another, every round of the month.
    assert alone.peak_live_pairs == MAX_PAIRS > shared.peak_live_pairs
    assert alone.evicted > WORKERS
    assert alone.unauthorized > WORKERS
    assert alone.logins > WORKERS * 2
    assert alone.pairs_issued > 10 * shared.pairs_issued


# -- The same deployment as real processes sharing a file store --------------------------


def _process_worker(connection, base_url: str, client_id: str, secret: str, directory) -> None:
    """A child process: one worker, driven step by step, on the instant its parent sends."""
    instant = [0.0]
    store = FileTokenStore(directory) if directory else MemoryTokenStore()
    worker = Worker(base_url, client_id, secret, store, clock=lambda: instant[0])
    connection.send("django" in sys.modules)
    while (message := connection.recv()) is not None:
        instant[0] = message
        connection.send(worker.call())
    worker.close()
    connection.send(dict(worker.tally.counts))


def simulate_with_processes(server, client, secret, directory: str, step) -> Figures:
    from freezegun import freeze_time

    context = multiprocessing.get_context("spawn")
    figures, outcomes, processes, connections = Figures(), Counter(), [], []
    try:
        for _ in range(WORKERS):
            ours, theirs = context.Pipe()
            args = (theirs, server.url, client.client_id, secret, directory)
            process = context.Process(target=_process_worker, args=args, daemon=True)
            process.start()
            processes.append(process)
            connections.append(ours)
        assert not any(connection.recv() for connection in connections), "a worker imported Django"
        with freeze_time(T0) as frozen:
            for now in rounds(step):
                frozen.move_to(now)
                for connection in connections:
                    connection.send(now.timestamp())
                outcomes.update(connection.recv() for connection in connections)
                figures.peak_live_pairs = max(figures.peak_live_pairs, live_pairs(client))
            finish(figures, client)
        for connection in connections:
            connection.send(None)
        for connection in connections:
            figures.add(Counter(connection.recv()))
    finally:
        for process in processes:
            process.join(GUARD)
            if process.is_alive():
                process.kill()
    figures.requests = sum(outcomes.values())
    figures.failed = figures.requests - outcomes["200"]
    return figures


@pytest.mark.django_db(transaction=True)
def test_twenty_processes_sharing_a_file_store_hold_one_pair_all_month(
    server, make_client, tmp_path
):
    client, secret = make_client("deployment", grant_types="client_credentials")
    directory = str(tmp_path / "tokens")
    figures = simulate_with_processes(server, client, secret, directory, PROCESS_STEP)
    rounds_every = f"a round every {hours(PROCESS_STEP)} h"
    figures.show(f"20 workers (processes), one shared file store, {rounds_every}")
    assert_one_pair_for_the_deployment(figures, client, PROCESS_STEP)
