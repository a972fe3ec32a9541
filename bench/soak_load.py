"""The soak's traffic and observers: simulated clients, an admin, cron and a cap sampler.

Every HTTP request is recorded as an :class:`Event` (wall-clock times, so they
compare with PostgreSQL's commit timestamps on the same host). The actors:

- **Partners**: API clients using ``client_credentials``, each run by several
  servers sharing one pair. Every few seconds the servers refresh *together*
  with the same refresh token (each gets a new pair inside the grace window),
  then converge on the newest. Now and then a lagging server refreshes with
  an older token (inside or after the grace window) or calls the API with a
  superseded pair, or a server logs out.
- **App sessions**: users logging in with the password grant through a public
  and a confidential app; whoami, refresh, ``/auth/pairs/``, logout, logout-all.
- **Admin**: revocations through the RFC 7009 endpoint and directly through
  ``token_lifecycle.services`` (what the admin's actions call), password
  changes, revocation of all of a client's pairs.
- **Cron**: ``manage.py purge_expired_tokens`` every few seconds, if it exists.
- **Sampler**: the live pairs of every principal, from its own connection.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import json
import random
import re
import subprocess
import sys
import threading
import time
from collections import Counter, deque
from datetime import datetime, timezone
from pathlib import Path

import httpx

# -- Recording ------------------------------------------------------------------


@dataclasses.dataclass(slots=True)
class Event:
    """One HTTP request as the client saw it."""

    t_sent: float  # time.time() just before the request left
    t_done: float  # time.time() when the answer (or the transport failure) came back
    latency: float  # seconds, from perf_counter
    endpoint: str  # whoami, refresh, client_credentials, password, revoke, logout, ...
    actor: str
    presented: str | None  # jti of the pair whose token was presented
    returned: str | None  # jti of the pair in a 200 token response
    refresh_digest: str | None  # SHA-256 of the refresh token in a 200 token response
    status: int  # 0: no HTTP answer (connection refused or reset, timeout)
    error: str  # OAuth error code, DRF detail, or the transport exception's name
    retry_after: str | None = None


@dataclasses.dataclass(slots=True)
class AdminAction:
    """An admin-side revocation; ``t_done`` is after its transaction committed."""

    kind: str
    t_start: float
    t_done: float
    ok: bool
    pair_ids: list[str]
    user_pk: int | None = None
    client_pk: int | None = None
    error: str = ""


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.admin: list[AdminAction] = []
        self.notes: list[str] = []


@dataclasses.dataclass(frozen=True)
class Held:
    """A pair as a client holds it."""

    jti: str
    access: str
    refresh: str


def jwt_claims(token: str) -> dict:
    """The payload of a JWT, unverified (the client only reads its own token's jti)."""
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def digest(refresh_token: str) -> str:
    return hashlib.sha256(refresh_token.encode()).hexdigest()


@dataclasses.dataclass
class Answer:
    status: int
    body: dict | list | None
    retry_after: str | None = None
    held: Held | None = None
    transport_error: str = ""

    @property
    def error(self) -> str:
        if self.transport_error:
            return self.transport_error
        if isinstance(self.body, dict):
            return str(self.body.get("error") or self.body.get("detail") or "")
        return ""


class Api:
    """One simulated server's HTTP client (one per thread), recording every request."""

    def __init__(self, base_url: str, recorder: Recorder, actor: str) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=20.0)
        self.recorder = recorder
        self.actor = actor

    def close(self) -> None:
        self.http.close()

    def call(
        self,
        endpoint: str,
        method: str,
        path: str,
        *,
        presented: str | None = None,
        data: dict | None = None,
        basic: tuple[str, str] | None = None,
        bearer: str | None = None,
    ) -> Answer:
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        t_sent, started = time.time(), time.perf_counter()
        retry_after = None
        try:
            response = self.http.request(method, path, data=data, auth=basic, headers=headers)
            status, retry_after = response.status_code, response.headers.get("Retry-After")
            try:
                body = response.json() if response.content else None
            except ValueError:  # Django's HTML error page: keep its title
                title = re.search(r"<title>(.*?)</title>", response.text, re.S)
                body = {"detail": (title.group(1) if title else response.text)[:120].strip()}
            error = ""
        except httpx.HTTPError as failure:
            status, body, error = 0, None, type(failure).__name__
        latency, t_done = time.perf_counter() - started, time.time()
        answer = Answer(status, body, retry_after, transport_error=error)
        if status == 200 and isinstance(body, dict) and "access_token" in body:
            claims = jwt_claims(body["access_token"])
            answer.held = Held(claims["jti"], body["access_token"], body["refresh_token"])
        self.recorder.events.append(
            Event(
                t_sent,
                t_done,
                latency,
                endpoint,
                self.actor,
                presented,
                answer.held.jti if answer.held else None,
                digest(answer.held.refresh) if answer.held else None,
                status,
                error or answer.error,
                retry_after,
            )
        )
        return answer

    # The requests of the API, by name.

    def client_credentials(self, client_id: str, secret: str) -> Answer:
        return self.call(
            "client_credentials",
            "POST",
            "/auth/token/",
            data={"grant_type": "client_credentials"},
            basic=(client_id, secret),
        )

    def password(self, client_auth: dict, username: str, password: str) -> Answer:
        data = {"grant_type": "password", "username": username, "password": password}
        return self._token("password", data, client_auth, None)

    def refresh(self, client_auth: dict, held: Held) -> Answer:
        data = {"grant_type": "refresh_token", "refresh_token": held.refresh}
        return self._token("refresh", data, client_auth, held.jti)

    def _token(self, endpoint, data, client_auth, presented) -> Answer:
        if "secret" in client_auth:
            basic = (client_auth["client_id"], client_auth["secret"])
            return self.call(
                endpoint, "POST", "/auth/token/", presented=presented, data=data, basic=basic
            )
        data = {**data, "client_id": client_auth["client_id"]}  # a public client
        return self.call(endpoint, "POST", "/auth/token/", presented=presented, data=data)

    def revoke(self, client_auth: dict, token: str, jti: str) -> Answer:
        basic = (client_auth["client_id"], client_auth["secret"])
        return self.call(
            "revoke",
            "POST",
            "/auth/token/revoke/",
            presented=jti,
            data={"token": token},
            basic=basic,
        )

    def whoami(self, held: Held) -> Answer:
        return self.call("whoami", "GET", "/api/whoami/", presented=held.jti, bearer=held.access)

    def pairs(self, held: Held) -> Answer:
        return self.call("pairs", "GET", "/auth/pairs/", presented=held.jti, bearer=held.access)

    def logout(self, held: Held) -> Answer:
        return self.call("logout", "POST", "/auth/logout/", presented=held.jti, bearer=held.access)

    def logout_all(self, held: Held) -> Answer:
        return self.call(
            "logout_all", "POST", "/auth/logout-all/", presented=held.jti, bearer=held.access
        )


def back_off(answer: Answer, stop: threading.Event) -> bool:
    """Wait as a well-behaved client does after 503/429 (Retry-After) or no answer."""
    if answer.status in (429, 503):
        try:
            wait = float(answer.retry_after or 1)
        except ValueError:
            wait = 1.0
        stop.wait(min(2.0, wait))  # on the Event, so the end of the run is not held up
        return True
    if answer.status == 0 or answer.status >= 500:
        stop.wait(0.2)
        return True
    return False


# -- Partners: client_credentials, several servers sharing a pair ---------------


@dataclasses.dataclass
class Timing:
    """The pace of the simulated clients (seconds, probabilities per loop turn)."""

    think: tuple[float, float] = (0.3, 1.2)
    refresh_every: float = 5.0
    lagging_refresh: float = 0.01
    lagging_whoami: float = 0.03
    logout: float = 0.003


class Partner:
    """One API client run by several servers that share its current pair."""

    def __init__(self, name: str, auth: dict, servers: int, timing: Timing) -> None:
        self.name = name
        self.auth = auth
        self.servers = servers
        self.timing = timing
        self.lock = threading.Lock()
        self.login_lock = threading.Lock()
        self.current: Held | None = None
        self.previous: deque[Held] = deque(maxlen=4)
        self.round = 0
        self.round_token: Held | None = None
        self.round_at = 0.0
        self.next_round_at = time.time() + random.uniform(0.5, timing.refresh_every)

    def adopt(self, held: Held) -> None:
        """Converge on the newest pair (pair ids are time-ordered UUIDv7)."""
        with self.lock:
            if self.current is None or held.jti > self.current.jti:
                if self.current is not None:
                    self.previous.append(self.current)
                self.current = held

    def drop(self, held: Held) -> None:
        """The pair stopped working (401, invalid_grant): the next server logs in again."""
        with self.lock:
            if self.current is not None and self.current.jti == held.jti:
                self.previous.append(self.current)
                self.current = None

    def login(self, api: Api) -> Held | None:
        with self.login_lock:
            if self.current is not None:
                return self.current
            answer = api.client_credentials(self.auth["client_id"], self.auth["secret"])
            if answer.held is not None:
                self.adopt(answer.held)
            return answer.held

    def maybe_start_round(self) -> None:
        with self.lock:
            now = time.time()
            if self.current is None or now < self.next_round_at:
                return
            self.round += 1
            self.round_token = self.current
            self.round_at = now + 0.1  # every server fires at this instant
            spread = self.timing.refresh_every
            self.next_round_at = now + random.uniform(0.5 * spread, 1.5 * spread)


def run_partner_server(
    partner: Partner, index: int, base_url: str, recorder: Recorder, stop: threading.Event
) -> None:
    api = Api(base_url, recorder, f"{partner.name}/server{index}")
    rng, timing, joined = random.Random(), partner.timing, 0
    try:
        while not stop.is_set():
            held = partner.current or partner.login(api)
            if held is None:
                stop.wait(0.5)
                continue
            if partner.round > joined:
                joined, token = partner.round, partner.round_token
                stop.wait(max(0.0, partner.round_at - time.time()))
                _refresh(api, partner, token, stop)
            elif partner.previous and rng.random() < timing.lagging_refresh:
                _refresh(api, partner, rng.choice(list(partner.previous)), stop)
            elif partner.previous and rng.random() < timing.lagging_whoami:
                # A server still on a superseded pair: fine while it lives, 401 after.
                back_off(api.whoami(rng.choice(list(partner.previous))), stop)
            elif rng.random() < timing.logout:
                answer = api.logout(held)
                if not back_off(answer, stop):
                    partner.drop(held)
            else:
                answer = api.whoami(held)
                if answer.status == 401:
                    partner.drop(held)
                back_off(answer, stop)
            partner.maybe_start_round()
            stop.wait(rng.uniform(*timing.think))
    finally:
        api.close()


def _refresh(api: Api, partner: Partner, token: Held, stop: threading.Event) -> None:
    answer = api.refresh(partner.auth, token)
    if answer.held is not None:
        partner.adopt(answer.held)
    elif answer.status == 400:
        partner.drop(token)
    back_off(answer, stop)


# -- App sessions: password grant through an app ---------------------------------


class Passwords:
    """The users' current passwords, changed by the admin while sessions log in."""

    def __init__(self, initial: dict[str, str]) -> None:
        self.lock = threading.Lock()
        self.current = dict(initial)
        self.changes = 0

    def get(self, username: str) -> str:
        with self.lock:
            return self.current[username]

    def next_password(self, username: str) -> str:
        with self.lock:
            self.changes += 1
            self.current[username] = f"soak-password-{self.changes}"
            return self.current[username]


def run_app_session(
    app: dict,
    username: str,
    passwords: Passwords,
    base_url: str,
    recorder: Recorder,
    stop: threading.Event,
    timing: Timing,
) -> None:
    api = Api(base_url, recorder, f"{app['name']}/{username}")
    rng, held = random.Random(), None
    try:
        while not stop.is_set():
            if held is None:
                answer = api.password(app, username, passwords.get(username))
                held = answer.held
                if held is None and not back_off(answer, stop):
                    stop.wait(0.5)  # a password change raced the login: read it again
                continue
            held = _app_step(api, app, held, rng.random(), stop)
            stop.wait(rng.uniform(*timing.think))
    finally:
        api.close()


def _app_step(api: Api, app: dict, held: Held, draw: float, stop) -> Held | None:
    """One request of an app session; returns the pair to go on with (None: log in)."""
    if draw < 0.80:
        answer = api.whoami(held)
    elif draw < 0.92:
        answer = api.refresh(app, held)
        if answer.held is not None:
            return answer.held
        if answer.status == 400:
            return None
    elif draw < 0.97:
        answer = api.pairs(held)
    elif draw < 0.99:
        answer = api.logout(held)
        if answer.status == 200:
            return None
    else:
        answer = api.logout_all(held)
        if answer.status == 200:
            return None
    if answer.status == 401:
        return None
    back_off(answer, stop)
    return held


# -- Admin: revocations from the side ---------------------------------------------


class Admin:
    """Revokes pairs as an operator would, in the soak process (Django set up)."""

    WEIGHTS = {
        "revoke_endpoint": 35,
        "admin_revoke": 35,
        "password_change": 20,
        "revoke_client": 10,
    }

    def __init__(
        self,
        partners: list[Partner],
        load_client_pks: list[int],
        users: dict,
        passwords: Passwords,
        base_url: str,
        recorder: Recorder,
    ) -> None:
        self.partners = partners
        self.load_client_pks = load_client_pks
        self.users = users  # username -> pk, whose passwords may change
        self.passwords = passwords
        self.recorder = recorder
        self.api = Api(base_url, recorder, "admin")
        self.rng = random.Random()

    def run(self, stop: threading.Event, interval: float) -> None:
        kinds, weights = list(self.WEIGHTS), list(self.WEIGHTS.values())
        try:
            while not stop.wait(self.rng.uniform(0.5 * interval, 1.5 * interval)):
                self.act(self.rng.choices(kinds, weights)[0])
        finally:
            self.api.close()

    def act(self, kind: str) -> None:
        from django.db import DatabaseError, connection

        t_start = time.time()
        action = AdminAction(kind, t_start, t_start, False, [])
        try:
            getattr(self, kind)(action)
        except DatabaseError as error:  # PostgreSQL restarting: an admin would retry
            action.error = f"{type(error).__name__}: {str(error).strip()[:120]}"
            connection.close()
        action.t_done = time.time()
        self.recorder.admin.append(action)

    def revoke_endpoint(self, action: AdminAction) -> None:
        """The client itself revokes one of its tokens (RFC 7009)."""
        partner = self.rng.choice(self.partners)
        held = partner.current
        if held is None:
            return
        token = held.refresh if self.rng.random() < 0.5 else held.access
        answer = self.api.revoke(partner.auth, token, held.jti)
        action.ok, action.pair_ids = answer.status == 200, [held.jti]
        if action.ok:
            self.present_again(held)

    def admin_revoke(self, action: AdminAction) -> None:
        """What the admin's revoke action does: ``services.revoke_pair(pair, ADMIN)``.

        Half the time on a pair a partner is using (then presented again at once),
        half the time on any live pair of the load.
        """
        from token_lifecycle import clock, services
        from token_lifecycle.models import TokenPair
        from token_lifecycle.rules import RevokeReason

        held = self.rng.choice(self.partners).current if self.rng.random() < 0.5 else None
        if held is not None:
            pair = TokenPair.objects.filter(pk=held.jti).first()
        else:
            live = TokenPair.objects.live(clock.now())
            pair = live.filter(client_id__in=self.load_client_pks).order_by("?").first()
        if pair is not None:
            action.ok = services.revoke_pair(pair, RevokeReason.ADMIN)
            action.pair_ids = [str(pair.pk)]
            if held is not None:
                self.present_again(held)

    def present_again(self, held: Held) -> None:
        """The revoked pair's access token, twice more: refused by whichever worker answers."""
        for _ in range(2):
            self.api.whoami(held)

    def password_change(self, action: AdminAction) -> None:
        """``set_password()`` + ``save()``: revokes every pair of the user."""
        from django.contrib.auth import get_user_model

        username = self.rng.choice(sorted(self.users))
        user = get_user_model().objects.get(pk=self.users[username])
        user.set_password(self.passwords.next_password(username))
        user.save()
        action.ok, action.user_pk = True, user.pk

    def revoke_client(self, action: AdminAction) -> None:
        """The admin's "revoke all pairs of this client" (``services.revoke_client_pairs``)."""
        from token_lifecycle import services
        from token_lifecycle.models import Client
        from token_lifecycle.rules import RevokeReason

        partner = self.rng.choice(self.partners)
        client = Client.objects.get(client_id=partner.auth["client_id"])
        revoked = services.revoke_client_pairs(client, RevokeReason.ADMIN)
        action.ok, action.client_pk = True, client.pk
        action.pair_ids = [str(pk) for pk in revoked]


# -- Cron: the purge command --------------------------------------------------------


@dataclasses.dataclass
class PurgeRun:
    t_start: float
    seconds: float
    returncode: int
    output: str


def run_cron(
    command: list[str],
    env: dict,
    cwd: Path,
    every: float,
    stop: threading.Event,
    runs: list[PurgeRun],
) -> None:
    """Run the purge every ``every`` seconds (first after a short delay) until stopped."""
    while not stop.wait(every if runs else min(every, 5.0)):
        t_start = time.time()
        try:
            done = subprocess.run(
                command, env=env, cwd=cwd, capture_output=True, text=True, timeout=60
            )
            output, code = (done.stdout + done.stderr).strip(), done.returncode
        except subprocess.TimeoutExpired:
            output, code = "timed out after 60 s", -1
        runs.append(PurgeRun(t_start, time.time() - t_start, code, output[-2000:]))


def purge_command_exists() -> bool:
    from django.core.management import get_commands

    return "purge_expired_tokens" in get_commands()


def purge_command(repo_dir: Path, older_than_days: int) -> list[str]:
    return [
        sys.executable,
        str(repo_dir / "manage.py"),
        "purge_expired_tokens",
        "--older-than",
        str(older_than_days),
        "--batch-size",
        "500",
    ]


# -- Sampler: live pairs per principal, from its own connection -------------------


@dataclasses.dataclass
class CapSamples:
    samples: int = 0
    failed: int = 0
    max_seen: dict = dataclasses.field(default_factory=Counter)  # (client, user) -> max
    violations: list = dataclasses.field(default_factory=list)


def run_sampler(
    dsn: str,
    table: str,
    caps: dict[int, int],
    stop: threading.Event,
    out: CapSamples,
    every: float = 0.15,
) -> None:
    """Count each principal's live pairs every ``every`` seconds.

    Reads the unrevoked rows and judges liveness at an instant taken *after*
    the read: every transaction the snapshot includes had its clock before
    that instant, so a count above the cap there is a real violation.
    """
    import psycopg

    connection = None
    query = f"SELECT client_id, user_id, live_until FROM {table} WHERE revoked_at IS NULL"
    while not stop.wait(every):
        try:
            if connection is None:
                connection = psycopg.connect(dsn, autocommit=True, connect_timeout=2)
            rows = connection.execute(query).fetchall()
            instant = datetime.now(timezone.utc)
        except psycopg.Error:
            out.failed += 1
            with contextlib.suppress(Exception):
                connection.close()
            connection = None
            continue
        out.samples += 1
        counts = Counter(
            (client, user) for client, user, live_until in rows if live_until > instant
        )
        for principal, count in counts.items():
            out.max_seen[principal] = max(out.max_seen[principal], count)
            if count > caps.get(principal[0], 10):
                out.violations.append((instant.isoformat(), principal, count))
    if connection is not None:
        connection.close()
