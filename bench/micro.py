"""In-process measurements on one stack: authenticate(), the token endpoints, revocation.

Run by run.py as ``python bench/micro.py OUT.json`` with a stack in the
environment (see common.stack_env). What it measures, and why:

1. ``authenticate()`` of each package's DRF authentication class, called
   directly on a ``rest_framework.request.Request`` built by
   ``APIRequestFactory`` (``GET /api/whoami/`` with one ``Authorization``
   header; the request objects are built outside the clock). That is the
   per-request cost a package adds to every API call, without the view,
   middleware or HTTP around it. Warm: the same token again and again (our
   caches filled by the first call). Query counts come from
   ``CaptureQueriesContext`` in a separate pass, so that capturing does not
   inflate the timings.
2. Ours cold: (a) the validation cache cleared before each call (the token's
   signature is still remembered by the process), (b) a fresh pair never seen
   by this process (signature verification and the one query).
3. Revocation: each package's way of revoking, then authenticate() again.
   Ours must refuse; simplejwt's classes (stateless or not) keep accepting the
   access token of a blacklisted refresh token.
4. knox with a user holding 1, 10 and 100 tokens (its cost grows with them).
5. One read of our validation cache (Django's ``get_many``; on Redis also an
   MGET on one reused client), and the whole whoami request of every package
   through Django's WSGI handler in this process (what gunicorn calls, without
   HTTP), with a cProfile of what ours adds to AllowAny.
6. The token endpoints, each view called with a ``RequestFactory`` POST
   (form-encoded; confidential clients with HTTP Basic, public ones with
   ``client_id`` in the body), response rendered: refresh (chained, the new
   refresh token used next, each package rotating), client_credentials and
   password grants. Query counts in the steady state (our principals at their
   cap of 10 live pairs, so every issue or refresh also evicts one).
7. Profiles of our authenticate() (pyinstrument tree, cProfile top costs) and
   of our refresh, into bench/profiles/.
"""

from __future__ import annotations

import base64
import cProfile
import io
import json
import os
import pstats
import sys
import time
from functools import partial
from pathlib import Path
from urllib.parse import urlencode

from common import (
    BENCH_DIR,
    Case,
    count_queries,
    measure,
    query_record,
    quick,
    setup_django,
    split_captured,
    write_json,
)

STACK = os.environ.get("BENCH_STACK", "sqlite-locmem")
FORM = "application/x-www-form-urlencoded"


def _stock_redis_bearer():
    """Ours with its validation cache on Django's stock ``RedisCache`` (the ``stock`` alias).

    Swaps the cache module's alias lookup for the call: a benchmark-only use
    of a private name, so that both backends run in one process and one run.
    """
    from django.core.cache import caches

    from token_lifecycle import cache
    from token_lifecycle.authentication import BearerTokenAuthentication

    class StockRedisBearer(BearerTokenAuthentication):
        def get_user(self, claims, now):
            own = cache._cache
            cache._cache = lambda: caches["stock"]
            try:
                return super().get_user(claims, now)
            finally:
                cache._cache = own

    return StockRedisBearer()


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


class AuthBench:
    """authenticate() of every package, for alice, with the same request shape."""

    def __init__(self, fixtures) -> None:
        from django.conf import settings
        from fixtures import dot_tokens, knox_token, ours_pair, simplejwt_tokens
        from knox.auth import TokenAuthentication
        from oauth2_provider.contrib.rest_framework import OAuth2Authentication
        from rest_framework.test import APIRequestFactory
        from rest_framework_simplejwt.authentication import (
            JWTAuthentication,
            JWTStatelessUserAuthentication,
        )

        from token_lifecycle.authentication import BearerTokenAuthentication
        from token_lifecycle.issuer import issuer_for

        self.factory = APIRequestFactory()
        self.fixtures = fixtures
        self.alice = fixtures.user("alice")
        self.issuer = issuer_for(self.request(""))
        self.ours_issued = ours_pair(fixtures.client("conf"), self.alice, self.issuer)
        _, simplejwt_access = simplejwt_tokens(self.alice)
        _, dot_access = dot_tokens(self.alice, fixtures.application("pub_password"))
        #: name -> (authentication class instance, Authorization header)
        self.packages = {
            "ours": (BearerTokenAuthentication(), f"Bearer {self.ours_issued.access_token}"),
            "simplejwt": (JWTAuthentication(), f"Bearer {simplejwt_access}"),
            "simplejwt-stateless": (
                JWTStatelessUserAuthentication(),
                f"Bearer {simplejwt_access}",
            ),
            "dot": (OAuth2Authentication(), f"Bearer {dot_access}"),
            "knox": (TokenAuthentication(), f"Token {knox_token(self.alice)}"),
        }
        if "stock" in settings.CACHES:
            self.packages["ours-stock-redis"] = (
                _stock_redis_bearer(),
                f"Bearer {self.ours_issued.access_token}",
            )

    def request(self, header: str):
        from rest_framework.request import Request

        extra = {"HTTP_AUTHORIZATION": header} if header else {}
        return Request(self.factory.get("/api/whoami/", **extra))

    def check(self) -> None:
        for name, (auth, header) in self.packages.items():
            result = auth.authenticate(self.request(header))
            assert result is not None, name
            assert result[0].get_username() in ("alice", ""), (name, result)  # TokenUser: ""

    def case(self, name: str, auth, header: str) -> Case:
        return Case(
            name=name,
            prepare=lambda n: [self.request(header) for _ in range(n)],
            call=auth.authenticate,
        )

    def warm(self, rounds: int) -> dict:
        queries = {
            name: count_queries(lambda a=auth, h=header: a.authenticate(self.request(h)))
            for name, (auth, header) in self.packages.items()
        }
        timings = measure(
            [self.case(name, *pair) for name, pair in self.packages.items()],
            rounds=rounds,
            round_seconds=0.06,
            min_calls=20,
        )
        return {name: {**timings[name], "queries": queries[name]} for name in self.packages}

    def cold(self, rounds: int) -> dict:
        cases, queries = self.cold_cases()
        timings = measure(cases, rounds=rounds, round_seconds=0, warmup_calls=0)
        return {name: {**timings[name], "queries": queries[name]} for name in timings}

    def cold_cases(self) -> tuple[list[Case], dict]:
        """Ours with the validation cache cleared, and with a fresh pair; their queries."""
        from django.core.cache import caches
        from fixtures import ours_pair

        from token_lifecycle.conf import lifecycle_settings

        auth, header = self.packages["ours"]
        cache = caches[lifecycle_settings().cache_alias]
        # (a) The validation cache emptied before each call (on Redis: FLUSHDB of
        # the benchmark's own database number).
        cleared = Case(
            name="ours: validation cache cleared",
            prepare=lambda n: [self.request(header) for _ in range(n)],
            call=auth.authenticate,
            per_call_setup=cache.clear,
            calls_per_round=40,
        )
        cleared_queries = count_queries(
            lambda: auth.authenticate(self.request(header)), before=cache.clear
        )
        # (b) A pair this process has never seen: its signature is verified and
        # its pair read from the database (one query), then cached.
        fresh_client = self.fixtures.client("fresh")

        def fresh_requests(n: int) -> list:
            issued = [ours_pair(fresh_client, self.alice, self.issuer) for _ in range(n)]
            return [self.request(f"Bearer {pair.access_token}") for pair in issued]

        fresh = Case(
            name="ours: fresh pair, never seen",
            prepare=fresh_requests,
            call=auth.authenticate,
            calls_per_round=30,
        )
        unseen = iter(fresh_requests(5))
        fresh_queries = count_queries(lambda: auth.authenticate(next(unseen)))
        return [cleared, fresh], {cleared.name: cleared_queries, fresh.name: fresh_queries}

    def revocation(self) -> dict:
        """Revoke with each package's own means, then authenticate() again."""
        from fixtures import dot_tokens, knox_token, ours_pair, simplejwt_tokens
        from knox.models import AuthToken
        from oauth2_provider.models import AccessToken
        from rest_framework.exceptions import AuthenticationFailed
        from rest_framework_simplejwt.tokens import RefreshToken

        from token_lifecycle import services
        from token_lifecycle.rules import RevokeReason

        def accepted(auth, header: str) -> bool:
            try:
                return auth.authenticate(self.request(header)) is not None
            except AuthenticationFailed:
                return False

        results = {}
        auth = self.packages["ours"][0]
        issued = ours_pair(self.fixtures.client("conf"), self.alice, self.issuer)
        header = f"Bearer {issued.access_token}"
        before = accepted(auth, header) and accepted(auth, header)  # cached as valid
        services.revoke_pair_by_id(issued.pair.pk, RevokeReason.LOGOUT)
        results["ours"] = {
            "how": "services.revoke_pair_by_id (what POST /auth/logout/ does)",
            "accepted_before": before,
            "accepted_after": accepted(auth, header),
        }
        refresh, access = simplejwt_tokens(self.alice)
        for name in ("simplejwt", "simplejwt-stateless"):
            auth = self.packages[name][0]
            results[name] = {"accepted_before": accepted(auth, f"Bearer {access}")}
        RefreshToken(refresh).blacklist()
        for name in ("simplejwt", "simplejwt-stateless"):
            auth = self.packages[name][0]
            results[name].update(
                how="refresh token blacklisted (token_blacklist, its logout)",
                accepted_after=accepted(auth, f"Bearer {access}"),
            )
        _, access = dot_tokens(self.alice, self.fixtures.application("pub_password"))
        auth = self.packages["dot"][0]
        before = accepted(auth, f"Bearer {access}")
        AccessToken.objects.get(token=access).revoke()
        results["dot"] = {
            "how": "AccessToken.revoke() (what its revocation endpoint does)",
            "accepted_before": before,
            "accepted_after": accepted(auth, f"Bearer {access}"),
        }
        token = knox_token(self.alice)
        auth = self.packages["knox"][0]
        before = accepted(auth, f"Token {token}")
        AuthToken.objects.filter(user=self.alice).order_by("-created").first().delete()
        results["knox"] = {
            "how": "AuthToken deleted (what its logout does)",
            "accepted_before": before,
            "accepted_after": accepted(auth, f"Token {token}"),
        }
        return results

    def knox_growth(self, rounds: int) -> dict:
        """knox checks every token of the user on each request: 1, 10, 100 tokens."""
        from django.contrib.auth import get_user_model
        from fixtures import knox_token

        auth = self.packages["knox"][0]
        cases, queries = [], {}
        for count in (1, 10, 100):
            user = get_user_model().objects.create(username=f"knox{count}")
            tokens = [knox_token(user) for _ in range(count)]
            name = f"knox, user with {count} tokens"
            cases.append(self.case(name, auth, f"Token {tokens[-1]}"))
            queries[name] = count_queries(
                lambda h=f"Token {tokens[-1]}": auth.authenticate(self.request(h))
            )
        timings = measure(cases, rounds=rounds, round_seconds=0.05, min_calls=10)
        return {name: {**timings[name], "queries": queries[name]} for name in timings}


def only_current_pair(client, user, refresh_token: str) -> None:
    """Revoke every live pair of (client, user) but the one holding ``refresh_token``."""
    from django.utils import timezone

    from token_lifecycle import credentials
    from token_lifecycle.models import TokenPair

    TokenPair.objects.filter(client=client, user=user, revoked_at__isnull=True).exclude(
        refresh_token_digest=credentials.digest(refresh_token)
    ).update(revoked_at=timezone.now(), revoke_reason="admin")


class EndpointBench:
    """The token endpoints of each package, called as views with RequestFactory."""

    def __init__(self, fixtures) -> None:
        from django.test import RequestFactory
        from django.urls import resolve

        self.factory = RequestFactory()
        self.fixtures = fixtures
        self.views = {
            path: resolve(path).func
            for path in (
                "/auth/token/",
                "/simplejwt/token/",
                "/simplejwt/token/refresh/",
                "/o/token/",
                "/knox/login/",
            )
        }
        self.ours = fixtures.secrets["ours"]
        self.dot = fixtures.secrets["dot"]

    # -- requests --

    def post(self, path: str, params: dict, auth: tuple[str, str] | None = None):
        extra = {"HTTP_AUTHORIZATION": basic(*auth)} if auth else {}
        return self.factory.post(path, urlencode(params), content_type=FORM, **extra)

    def client_params(self, secrets: dict, params: dict) -> tuple[dict, tuple | None]:
        """Confidential: HTTP Basic; public: client_id in the body."""
        if secrets["secret"]:
            return params, (secrets["client_id"], secrets["secret"])
        return {**params, "client_id": secrets["client_id"]}, None

    def call(self, request):
        response = self.views[request.path](request)
        if hasattr(response, "render"):
            response.render()
        return response

    @staticmethod
    def body(response) -> dict:
        if response.status_code != 200:
            raise AssertionError(f"{response.status_code}: {response.content[:300]!r}")
        return json.loads(response.content)

    # -- cases --

    def refresh_chain(
        self, name: str, path: str, start: str, make_params, token_field: str, reset=None
    ):
        """A chain of refreshes: each uses the refresh token the previous one returned.

        ``reset(token)``, if given, runs before each refresh, outside the clock.
        """
        state = {"token": start}

        def prepare(n: int) -> list:
            return [None] * n

        def call(_):
            params, auth = make_params(state["token"])
            return self.call(self.post(path, params, auth))

        def after(response) -> None:
            state["token"] = self.body(response)[token_field]

        # The request is built inside the clock here (it needs the previous
        # token): a RequestFactory POST costs ~20 us, the same for everyone.
        setup = (lambda: reset(state["token"])) if reset else None
        return Case(name=name, prepare=prepare, call=call, after=after, per_call_setup=setup)

    def fixed(self, name: str, path: str, params: dict, auth) -> Case:
        return Case(
            name=name,
            prepare=lambda n: [self.post(path, params, auth) for _ in range(n)],
            call=self.call,
            after=self.body,
        )

    def refresh_cases(self) -> list[Case]:
        """Ours at the cap (every refresh evicts a pair) and below it; the peers' chains.

        A refreshed pair stays live while its access token does (15 days), so a
        client refreshing more often than every 1.5 days sits at the cap of 10
        and each refresh also evicts its oldest pair. One refreshing when its
        access token expires has two live pairs and evicts nothing: "below the
        cap" revokes the principal's other pairs before each call (outside the
        clock) to stay there.
        """
        from django.contrib.auth import get_user_model
        from fixtures import dot_tokens, ours_pair, simplejwt_tokens

        from token_lifecycle.issuer import issuer_for

        bob = self.fixtures.user("bob")
        dave, _ = get_user_model().objects.get_or_create(username="dave")
        issuer = issuer_for(self.factory.get("/"))
        cases = []
        for label, client, user, below in (
            ("confidential client, at the cap", "conf", bob, False),
            ("confidential client, below the cap", "conf", dave, True),
            ("public client, at the cap", "pub", bob, False),
        ):
            secrets = self.ours[client]
            model = self.fixtures.client(client)
            cases.append(
                self.refresh_chain(
                    f"ours refresh ({label})",
                    "/auth/token/",
                    ours_pair(model, user, issuer).refresh_token,
                    lambda token, s=secrets: self.client_params(
                        s, {"grant_type": "refresh_token", "refresh_token": token}
                    ),
                    "refresh_token",
                    reset=partial(only_current_pair, model, user) if below else None,
                )
            )
        cases.append(
            self.refresh_chain(
                "simplejwt refresh (rotation + blacklist)",
                "/simplejwt/token/refresh/",
                simplejwt_tokens(bob)[0],
                lambda token: ({"refresh": token}, None),
                "refresh",
            )
        )
        for label, app in (("confidential", "conf_password"), ("public", "pub_password")):
            secrets = self.dot[app]
            start = dot_tokens(bob, self.fixtures.application(app))[0]
            cases.append(
                self.refresh_chain(
                    f"dot refresh ({label} client)",
                    "/o/token/",
                    start,
                    lambda token, s=secrets: self.client_params(
                        s, {"grant_type": "refresh_token", "refresh_token": token}
                    ),
                    "refresh_token",
                )
            )
        return cases

    def client_credentials_cases(self) -> list[Case]:
        grant = {"grant_type": "client_credentials"}
        return [
            self.fixed(
                "ours client_credentials",
                "/auth/token/",
                *self.client_params(self.ours["conf"], grant),
            ),
            self.fixed(
                "dot client_credentials (confidential)",
                "/o/token/",
                *self.client_params(self.dot["conf_cc"], grant),
            ),
        ]

    def password_cases(self) -> list[Case]:
        """Password grants: one PBKDF2 verification each (two for DOT's confidential client).

        Our principals (conf, carol) and (pub, carol) are filled to their cap
        beforehand without the password hasher, so that the measured grants run
        in the steady state (each evicting one pair) without a dozen slow warm-ups.
        """
        from common import PASSWORD
        from fixtures import ours_pair

        from token_lifecycle.issuer import issuer_for

        carol = self.fixtures.user("carol")
        issuer = issuer_for(self.factory.get("/"))
        for client in ("conf", "pub"):
            for _ in range(10):
                ours_pair(self.fixtures.client(client), carol, issuer)
        grant = {"grant_type": "password", "username": "carol", "password": PASSWORD}
        cases = [
            self.fixed(
                f"ours password ({label} client)",
                "/auth/token/",
                *self.client_params(self.ours[client], grant),
            )
            for label, client in (("confidential", "conf"), ("public", "pub"))
        ]
        cases.append(
            self.fixed(
                "simplejwt obtain pair",
                "/simplejwt/token/",
                {"username": "carol", "password": PASSWORD},
                None,
            )
        )
        cases += [
            self.fixed(
                f"dot password ({label} client)",
                "/o/token/",
                *self.client_params(self.dot[app], grant),
            )
            for label, app in (("confidential", "conf_password"), ("public", "pub_password"))
        ]
        cases.append(
            self.fixed("knox login (HTTP Basic)", "/knox/login/", {}, ("carol", PASSWORD))
        )
        for case in cases:
            case.calls_per_round = 1
        return cases

    def code_exchange_cases(self) -> list[Case]:
        """The ``authorization_code`` grant of a public client with PKCE (S256), ours and DOT's.

        The codes are stored beforehand, outside the clock, the way each
        package's authorize view stores them on consent; the clock runs over
        the token request: the code's lookup, the verifier, the single-use
        claim, and a new pair (ours, at its cap: each evicts one) or token.
        """
        from django.contrib.auth import get_user_model
        from fixtures import REDIRECT_URI, dot_code, ours_code

        from token_lifecycle.pkce import s256_challenge

        erin, _ = get_user_model().objects.get_or_create(username="erin")
        verifier = "v" * 43 + "-bench"
        challenge = s256_challenge(verifier)
        exchange = {
            "grant_type": "authorization_code",
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
        }

        def case(name: str, path: str, secrets: dict, make_code) -> Case:
            def prepare(n: int) -> list:
                return [
                    self.post(
                        path, *self.client_params(secrets, {**exchange, "code": make_code()})
                    )
                    for _ in range(n)
                ]

            return Case(name=name, prepare=prepare, call=self.call, after=self.body)

        code_client = self.fixtures.client("code")
        application = self.fixtures.application("pub_code")
        return [
            case(
                "ours authorization_code (public client, PKCE)",
                "/auth/token/",
                self.ours["code"],
                lambda: ours_code(code_client, erin, challenge),
            ),
            case(
                "dot authorization_code (public client, PKCE)",
                "/o/token/",
                self.dot["pub_code"],
                lambda: dot_code(erin, application, challenge),
            ),
        ]

    def run(self, cases: list[Case], rounds: int) -> dict:
        """Warm up (our principals reach their cap), count queries, then time."""
        queries = self.prime(cases)
        # Short rounds, many of them: a commit's fsync on this shared disk comes in bursts.
        timings = measure(cases, rounds=rounds, round_seconds=0.1, max_calls=20, warmup_calls=0)
        return {
            name: {**timings[name], "queries": queries[name]}
            for name in (case.name for case in cases)
        }

    @staticmethod
    def prime(cases: list[Case]) -> dict:
        """Bring each case to its steady state, then count its queries per call."""
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        queries = {}
        for case in cases:
            # Refreshes and client_credentials: a dozen calls bring our principal to
            # its cap. Password grants were brought there without the hasher.
            slow = case.calls_per_round == 1
            warmup = 1 if slow else 12 if case.name.startswith("ours") else 2
            for arg in case.prepare(warmup):
                if case.per_call_setup:
                    case.per_call_setup()
                result = case.call(arg)
                if case.after:
                    case.after(result)
            counts, control, sql = [], [], []
            for arg in case.prepare(2 if slow else 3):
                if case.per_call_setup:
                    case.per_call_setup()
                with CaptureQueriesContext(connection) as captured:
                    result = case.call(arg)
                if case.after:
                    case.after(result)
                data, tx, sql = split_captured(captured)
                counts.append(data)
                control.append(tx)
            queries[case.name] = query_record(counts, control, sql)
        return queries


def cache_primitives(auth_bench: AuthBench, rounds: int) -> dict:
    """What one validation-cache read costs, and what it could cost.

    Our warm path reads three entries with one ``cache.get_many``. On Redis,
    Django's ``RedisCache`` builds a new ``redis.Redis`` client for every
    operation (``RedisCacheClient.get_client``), and redis-py builds its table
    of response callbacks in each; the same MGET through one reused client
    shows what that costs. Uses private names of Django and of
    token_lifecycle.cache, so it is skipped (``{}``) if they change.
    """
    from django.core.cache import caches

    from token_lifecycle import cache as validation
    from token_lifecycle.conf import lifecycle_settings

    try:
        pair = auth_bench.ours_issued.pair
        keys = [
            validation._pair_key(str(pair.pk)),
            validation._user_key(pair.user_id),
            validation._client_key(pair.client.client_id),
        ]
    except AttributeError:
        return {}
    cache = caches[lifecycle_settings().cache_alias]
    cases = [
        Case(
            "Django cache.get_many(3 keys)",
            prepare=lambda n: [keys] * n,
            call=cache.get_many,
        )
    ]
    raw = getattr(cache, "_cache", None)
    if raw is not None and hasattr(raw, "get_client"):
        made = [cache.make_and_validate_key(key) for key in keys]
        client = raw.get_client()
        loads = raw._serializer.loads

        def reused_mget(_) -> list:
            return [loads(value) for value in client.mget(made)]

        cases += [
            Case(
                "redis-py MGET(3 keys) on one reused client, unpickled",
                prepare=lambda n: [None] * n,
                call=reused_mget,
            ),
            Case(
                "redis.Redis(connection_pool=...) construction alone",
                prepare=lambda n: [None] * n,
                call=lambda _: raw.get_client(),
            ),
        ]
    return measure(cases, rounds=rounds, round_seconds=0.05, min_calls=20)


class RequestBench:
    """The whole whoami request through Django's WSGI handler, in this process.

    What gunicorn calls, minus the HTTP parsing and sockets: middleware, URL
    resolution, DRF, the authentication class, rendering, and the
    request_started/request_finished signals (SQLite's connection is closed
    after each request, as Django does by default). Interleaved rounds, wall and
    CPU time: a check on the HTTP figures that does not depend on a load
    generator sharing the two cores.
    """

    def __init__(self, auth_bench: AuthBench) -> None:
        from django.core.handlers.wsgi import WSGIHandler
        from django.test import RequestFactory

        self.handler = WSGIHandler()
        self.factory = RequestFactory()
        # Each package's whoami view (bench_project/urls.py); the stock-Redis variant has none.
        self.headers = {"allowany": ""} | {
            name: header
            for name, (_, header) in auth_bench.packages.items()
            if name != "ours-stock-redis"
        }

    def environ(self, name: str) -> dict:
        header = self.headers[name]
        headers = {"Authorization": header} if header else {}
        return self.factory.get(f"/api/whoami/{name}/", headers=headers).environ

    def call(self, environ: dict) -> None:
        def start_response(status: str, headers) -> None:
            if not status.startswith("200"):
                raise AssertionError(status)

        response = self.handler(environ, start_response)
        b"".join(response)
        response.close()

    def measure(self, rounds: int) -> dict:
        cases = [
            Case(
                name=name,
                prepare=lambda n, name=name: [self.environ(name) for _ in range(n)],
                call=self.call,
            )
            for name in self.headers
        ]
        return measure(cases, rounds=rounds, round_seconds=0.08, min_calls=10)

    def profile_difference(self, calls: int) -> dict:
        """cProfile of ours and of AllowAny: the functions only ours calls, by own time.

        Functions both requests call the same number of times are left out: on
        a loaded machine their time differs by noise, not by work.
        """
        per_function = {}
        for name in ("allowany", "ours"):
            environs = [self.environ(name) for _ in range(calls + 50)]
            for environ in environs[:50]:
                self.call(environ)
            profiler = cProfile.Profile()
            profiler.enable()
            for environ in environs[50:]:
                self.call(environ)
            profiler.disable()
            stats = pstats.Stats(profiler).stats
            per_function[name] = {key: (value[1], value[2]) for key, value in stats.items()}
        base, ours = per_function["allowany"], per_function["ours"]
        rows = []
        for key in base.keys() | ours.keys():
            extra = ours.get(key, (0, 0.0))[1] - base.get(key, (0, 0.0))[1]
            extra_calls = ours.get(key, (0, 0.0))[0] - base.get(key, (0, 0.0))[0]
            filename, line, function = key
            rows.append(
                {
                    "function": function,
                    "where": f"{_short(filename)}:{line}",
                    "calls_per_call": extra_calls / calls,
                    "own_us": extra / calls * 1e6,
                }
            )
        rows = [row for row in rows if row["calls_per_call"] > 0]
        rows.sort(key=lambda row: row["own_us"], reverse=True)
        total = sum(row["own_us"] for row in rows)
        for row in rows:
            row["own_share"] = row["own_us"] / total if total > 0 else 0
        return {"calls": calls, "total_extra_us": total, "top": rows[:14]}


# -- Profiles -------------------------------------------------------------------------


def top_costs(profile: cProfile.Profile, calls: int, limit: int = 12) -> list[dict]:
    """cProfile's functions by own time, in microseconds per profiled call."""
    stats = pstats.Stats(profile)
    total = stats.total_tt
    rows = []
    for (filename, line, function), (_, ncalls, tottime, cumtime, _) in stats.stats.items():
        rows.append(
            {
                "function": function,
                "where": f"{_short(filename)}:{line}",
                "calls_per_call": ncalls / calls,
                "own_us": tottime / calls * 1e6,
                "cumulative_us": cumtime / calls * 1e6,
                "own_share": tottime / total if total else 0,
            }
        )
    rows.sort(key=lambda row: row["own_us"], reverse=True)
    return rows[:limit]


def _short(filename: str) -> str:
    for marker in ("site-packages/", "/work/main/", "lib/python3"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


def profile(name: str, function, calls: int, before=None) -> dict:
    """pyinstrument (the call tree, as text) and cProfile (top own costs) of ``calls`` calls.

    pyinstrument's HTML (tens of MB at this sampling rate) is not written: the
    text tree is what a reader needs.
    """
    from pyinstrument import Profiler

    out = BENCH_DIR / "profiles"
    out.mkdir(exist_ok=True)
    profiler = Profiler(interval=0.0001)
    profiler.start()
    for _ in range(calls):
        if before:
            before()
        function()
    profiler.stop()
    tree = profiler.output_text(unicode=False, color=False, show_all=False)
    (out / f"{name}.txt").write_text(tree)
    cprofile = cProfile.Profile()
    for _ in range(calls):
        if before:
            before()
        cprofile.enable()
        function()
        cprofile.disable()
    stream = io.StringIO()
    pstats.Stats(cprofile, stream=stream).sort_stats("tottime").print_stats(25)
    (out / f"{name}.cprofile.txt").write_text(stream.getvalue())
    # The tree without pyinstrument's banner, from the first frame on.
    body = tree[tree.index("Profile at") :].split("\n", 1)[1].strip("\n") if tree else ""
    return {"calls": calls, "top": top_costs(cprofile, calls), "tree": body}


def profiles(auth_bench: AuthBench, endpoint_bench: EndpointBench) -> dict:
    from django.core.cache import caches

    from token_lifecycle.conf import lifecycle_settings

    auth, header = auth_bench.packages["ours"]
    cache = caches[lifecycle_settings().cache_alias]
    request = auth_bench.request(header)
    n = 1000 if quick() else 5000
    results = {
        "authenticate_warm": profile(
            f"authenticate_warm_{STACK}", lambda: auth.authenticate(request), n
        ),
        "authenticate_cache_cleared": profile(
            f"authenticate_cache_cleared_{STACK}",
            lambda: auth.authenticate(request),
            n // 10,
            before=cache.clear,
        ),
    }
    refresh = endpoint_bench.refresh_cases()[0]
    results["refresh"] = profile(
        f"refresh_{STACK}",
        lambda: refresh.after(refresh.call(None)),
        50 if quick() else 150,
    )
    return results


def database_version() -> str:
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            return "PostgreSQL " + cursor.fetchone()[0]
    import sqlite3

    return "SQLite " + sqlite3.sqlite_version


def cache_version() -> str:
    from django.conf import settings

    if "redis" in settings.CACHES["default"]["BACKEND"].lower():
        import redis

        info = redis.Redis.from_url(settings.CACHES["default"]["LOCATION"]).info("server")
        return f"Redis {info['redis_version']}"
    return "Django LocMemCache (per process)"


def main() -> None:
    out = Path(sys.argv[1])
    setup_django()
    from fixtures import load

    fixtures = load()
    rounds = 5 if quick() else 15
    started = time.time()
    results: dict = {"stack": STACK, "database": database_version(), "cache": cache_version()}

    auth_bench = AuthBench(fixtures)
    auth_bench.check()
    print(f"[{STACK}] authenticate(), warm", flush=True)
    results["authenticate_warm"] = auth_bench.warm(rounds)
    print(f"[{STACK}] authenticate(), cold", flush=True)
    results["authenticate_cold"] = auth_bench.cold(3 if quick() else 7)
    results["revocation"] = auth_bench.revocation()
    results["knox_growth"] = auth_bench.knox_growth(3 if quick() else 7)
    results["cache_primitives"] = cache_primitives(auth_bench, 5 if quick() else 11)
    print(f"[{STACK}] whoami through the WSGI handler", flush=True)
    request_bench = RequestBench(auth_bench)
    results["request"] = request_bench.measure(5 if quick() else 11)

    endpoints = EndpointBench(fixtures)
    endpoint_rounds = 3 if quick() else 11
    print(f"[{STACK}] token endpoint: refresh", flush=True)
    results["refresh"] = endpoints.run(endpoints.refresh_cases(), endpoint_rounds)
    print(f"[{STACK}] token endpoint: client_credentials", flush=True)
    results["client_credentials"] = endpoints.run(
        endpoints.client_credentials_cases(), endpoint_rounds
    )
    print(f"[{STACK}] token endpoint: authorization_code", flush=True)
    results["authorization_code"] = endpoints.run(endpoints.code_exchange_cases(), endpoint_rounds)
    print(f"[{STACK}] token endpoint: password", flush=True)
    results["password"] = endpoints.run(endpoints.password_cases(), 3 if quick() else 5)

    print(f"[{STACK}] profiles", flush=True)
    results["profiles"] = profiles(auth_bench, endpoints)
    results["profiles"]["request_difference"] = request_bench.profile_difference(
        500 if quick() else 2000
    )
    results["seconds"] = time.time() - started
    write_json(out, results)


if __name__ == "__main__":
    main()
