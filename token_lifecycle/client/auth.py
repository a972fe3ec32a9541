"""``TokenAuth``: an ``httpx.Auth`` that follows the lifecycle's advice.

What it does for every request, sync or async:

1. **Attach** ``Authorization: Bearer <access token>`` of the current pair,
   obtaining one first (from the store, else by logging in).
2. **Refresh proactively**: once the access token is within the *refresh
   margin* of its expiry (by default 10% of its lifetime: 1.5 days of the
   default 15), it is renewed before the request, so requests never run into
   an expired token. The old pair's access token keeps its own expiry on the
   server, so workers still holding it are not disturbed.
3. **Retry once on 401 ``invalid_token``** (revoked, evicted, expired early,
   a signing key withdrawn): renew and resend the request once; a second 401
   is returned to the caller.

**One renewal at a time.** Within one auth object, threads and asyncio tasks
share a single flight (``flight.py``): one renews, the others wait for its
result. Across auth objects, processes and hosts, the store's lock does the
same (``stores/base.py``): the renewer looks at the store again under the lock
and adopts a pair that another worker stored meanwhile, so a deployment makes
one refresh per rotation and holds one or two live pairs, whatever its number
of workers.

**Never with a stale token.** A worker refreshes with the *stored* refresh
token, not the one it happens to hold: a worker that slept past another's
refresh and the 6-hour grace window would otherwise replay a used token,
which the server answers by revoking the whole family (docs/lifecycle.md#refresh).

**Terminal refusals** (``invalid_grant``) raise a subclass of
:class:`~token_lifecycle.client.errors.ReauthenticationRequired`. With
credentials at hand (client credentials, or a password callback that returns a
password) it logs in again once instead, by default.

**Transient failures** of a *proactive* refresh (network, 5xx, 429) while
the access token still works are logged and retried after the server's
``Retry-After``, else ``retry_interval`` seconds; the request goes out with
the current token. Only a failure with no
working token reaches the caller.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import AsyncGenerator, Callable, Generator
from datetime import timedelta
from urllib.parse import urljoin

import httpx

from .endpoint import TokenEndpoint
from .errors import LoginRequired, ReauthenticationRequired, TokenEndpointUnavailable
from .flight import SingleFlight
from .grants import ClientCredentials, Grant, PasswordGrant
from .stores import MemoryTokenStore, TokenStore
from .tokens import TokenSet

logger = logging.getLogger("token_lifecycle.client")

#: The default store: shared by every ``TokenAuth`` of this process, so that
#: several auth objects for one principal with the same credentials (one per
#: thread, or even one per request) still share one pair.
PROCESS_STORE = MemoryTokenStore()

_INVALID_TOKEN = re.compile(r"""\berror\s*=\s*"?invalid_token\b""", re.IGNORECASE)


def rejects_access_token(response: httpx.Response) -> bool:
    """A 401 whose ``WWW-Authenticate: Bearer`` challenge says ``error="invalid_token"``.

    A 401 without that error (no credentials reached the server) or a 403
    (insufficient scope) is not something a new token fixes.
    """
    if response.status_code != 401:
        return False
    return any(
        challenge.strip().lower().startswith("bearer") and _INVALID_TOKEN.search(challenge)
        for challenge in response.headers.get_list("www-authenticate")
    )


def _wall_clock() -> float:
    # Looked up at each call (not bound at import) so that freezegun moves it too.
    return time.time()


class TokenAuth(httpx.Auth):
    """Bearer authentication with a pair obtained, shared and renewed per docs/lifecycle.md.

    ``token_url`` is the server's ``POST /auth/token/``. ``grant`` is
    :class:`ClientCredentials` (default), :class:`PasswordGrant` or
    :class:`LoopbackLogin` (a person logs in through the browser). ``store``
    is where the pair lives (default: shared by the whole process, see
    :data:`PROCESS_STORE`); give every worker of a deployment the same
    :class:`FileTokenStore` or :class:`RedisTokenStore` to share one pair
    among them. ``store_key`` names the pair in the store (default: derived
    from the URL, client id, grant and a digest of the credentials, so
    unrelated clients never collide and wrong credentials never find a pair;
    an explicit ``store_key`` is shared by whoever names it).

    ``refresh_margin`` (a ``timedelta``) renews that long before the access
    token expires; without it the margin is ``refresh_fraction`` of the
    access token's lifetime. ``lock_timeout`` bounds the wait for another
    worker's renewal (then this one renews without the lock).
    ``auto_reauthenticate`` logs in again once when a refresh is refused for
    good. ``token_client`` is the ``httpx.Client`` for token requests (default:
    one of its own); ``revocation_url`` defaults to ``<token_url>revoke/``, as
    this app mounts it. ``clock`` returns epoch seconds (default ``time.time``).
    """

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str | None = None,
        *,
        grant: Grant | None = None,
        store: TokenStore | None = None,
        store_key: str | None = None,
        refresh_margin: timedelta | None = None,
        refresh_fraction: float = 0.1,
        auto_reauthenticate: bool = True,
        lock_timeout: float = 30.0,
        retry_interval: float = 30.0,
        client_auth: str = "basic",
        revocation_url: str | None = None,
        token_client: httpx.Client | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if not 0 <= refresh_fraction < 1:
            raise ValueError("refresh_fraction must be in [0, 1)")
        if refresh_margin is not None and refresh_margin < timedelta(0):
            raise ValueError("refresh_margin must not be negative")
        self.grant: Grant = grant if grant is not None else ClientCredentials()
        self.store = store if store is not None else PROCESS_STORE
        self.store_key = store_key or _store_key(token_url, client_id, client_secret, self.grant)
        self._endpoint = TokenEndpoint(
            token_url,
            client_id,
            client_secret,
            client_auth=client_auth,
            revocation_url=revocation_url or urljoin(token_url.rstrip("/") + "/", "revoke/"),
            http_client=token_client,
        )
        self._refresh_margin = None if refresh_margin is None else refresh_margin.total_seconds()
        self._refresh_fraction = refresh_fraction
        self._auto_reauthenticate = auto_reauthenticate
        self._lock_timeout = lock_timeout
        self._retry_interval = retry_interval
        self._now = clock or _wall_clock
        self._flight: SingleFlight[TokenSet] = SingleFlight()
        #: This object's copy of the pair: read without the store on every request.
        self._current: TokenSet | None = None
        #: After a failed proactive refresh, no new attempt before this instant.
        self._quiet_until = float("-inf")

    # -- httpx.Auth ------------------------------------------------------------

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        request.read()  # buffered, so that the request can be sent again after a 401
        tokens = self.tokens()
        response = yield _authorized(request, tokens)
        if rejects_access_token(response):
            logger.info("401 invalid_token: renewing the pair and retrying once.")
            yield _authorized(request, self._renew(tokens, rejected=True))

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        await request.aread()
        tokens = await self.atokens()
        response = yield _authorized(request, tokens)
        if rejects_access_token(response):
            logger.info("401 invalid_token: renewing the pair and retrying once.")
            yield _authorized(request, await self._arenew(tokens, rejected=True))

    # -- Public helpers ----------------------------------------------------------

    def tokens(self) -> TokenSet:
        """The pair to use now, renewed first if it is due (for callers outside httpx)."""
        current = self._current
        if current is not None and not self._needs_renewal(current):
            return current
        return self._renew(current, rejected=False)

    async def atokens(self) -> TokenSet:
        """:meth:`tokens` for asyncio: waits without blocking the event loop."""
        current = self._current
        if current is not None and not self._needs_renewal(current):
            return current
        return await self._arenew(current, rejected=False)

    def revoke(self) -> None:
        """Log out: revoke the shared pair (RFC 7009) and remove it from the store.

        Every worker sharing the store then logs in again on its next request,
        when it has credentials.
        """
        with self.store.lock(self.store_key, self._lock_timeout):
            tokens = self.store.load(self.store_key) or self._current
            if tokens is not None:
                self._revoke_pair(tokens)
            self.store.delete(self.store_key)
            self._current = None

    async def arevoke(self) -> None:
        await asyncio.to_thread(self.revoke)

    def close(self) -> None:
        """Close the token-request client, if this object created it."""
        self._endpoint.close()

    # -- When to renew -------------------------------------------------------------

    def _margin(self, tokens: TokenSet) -> float:
        if self._refresh_margin is not None:
            return self._refresh_margin
        return self._refresh_fraction * (tokens.access_lifetime or 0.0)

    def _due(self, tokens: TokenSet, now: float) -> bool:
        """The access token is within the refresh margin of its expiry (or past it)."""
        if tokens.access_expires_at is None:
            return False
        return now >= tokens.access_expires_at - self._margin(tokens)

    def _needs_renewal(self, tokens: TokenSet) -> bool:
        now = self._now()
        if not self._due(tokens, now):
            return False
        # A proactive refresh that failed is not retried on every request meanwhile.
        return not (now < self._quiet_until and tokens.access_usable(now))

    # -- Renewal: one flight per object, one renewer per store key ------------------

    def _renew(self, stale: TokenSet | None, *, rejected: bool) -> TokenSet:
        result = stale
        for _ in range(2):  # a second round only if a flight returned the rejected pair
            flight, leads = self._flight.join()
            if leads:
                work = functools.partial(self._obtain, stale, rejected=rejected)
                return self._flight.lead(flight, work)
            result = flight.result()
            if not (rejected and result.same_pair(stale)):
                return result
        return result

    async def _arenew(self, stale: TokenSet | None, *, rejected: bool) -> TokenSet:
        result = stale
        for _ in range(2):
            flight, leads = self._flight.join()
            if leads:
                # The renewal blocks (store lock, token request): in a thread, never on the loop.
                work = functools.partial(self._obtain, stale, rejected=rejected)
                return await asyncio.to_thread(self._flight.lead, flight, work)
            result = await asyncio.wrap_future(flight)
            if not (rejected and result.same_pair(stale)):
                return result
        return result

    def _obtain(self, stale: TokenSet | None, *, rejected: bool) -> TokenSet:
        """Under the store's lock: adopt a pair another worker stored, else refresh or log in."""
        with self.store.lock(self.store_key, self._lock_timeout) as locked:
            if not locked:
                logger.warning(
                    "Token store lock %s not acquired within %s s: renewing without it.",
                    self.store_key,
                    self._lock_timeout,
                )
            stored = self.store.load(self.store_key)
            now = self._now()
            if stored is not None and self._adoptable(stored, stale, rejected, now):
                self._current = stored
                return stored
            # Renew from the store's pair, not our own copy (see the module docstring).
            base = stored if stored is not None else stale
            new = self._exchange(base, rejected=rejected, now=now)
            if new is base:  # a proactive refresh failed; the current token still works
                self._current = base
                return base
            self._current = self._publish(base, new)
            return self._current

    def _adoptable(
        self, stored: TokenSet, stale: TokenSet | None, rejected: bool, now: float
    ) -> bool:
        if rejected and stored.same_pair(stale):
            return False  # the server just refused this very pair
        return not self._due(stored, now)

    def _exchange(self, base: TokenSet | None, *, rejected: bool, now: float) -> TokenSet:
        """A new pair from ``base``'s refresh token, or from a login; ``base`` itself when a
        proactive refresh failed for a passing reason and ``base`` still works."""
        if base is None or base.refresh_token is None:
            return self._login(cause=None)
        try:
            return self._refresh(base)
        except ReauthenticationRequired as refused:
            logger.info("Refresh refused (%s).", refused)
            if not self._auto_reauthenticate:
                self._forget(base)
                raise
            try:
                return self._login(cause=refused)
            except ReauthenticationRequired:
                self._forget(base)
                raise
        except (httpx.TransportError, TokenEndpointUnavailable) as error:
            if rejected or not base.access_usable(now):
                raise
            pause = getattr(error, "retry_after", None) or self._retry_interval
            self._quiet_until = now + pause
            logger.warning(
                "Proactive refresh failed (%s); using the current access token, which is "
                "valid for %.0f s more, and trying again in %s s.",
                error,
                (base.access_expires_at or now) - now,
                pause,
            )
            return base

    def _refresh(self, base: TokenSet) -> TokenSet:
        assert base.refresh_token is not None
        params = {"grant_type": "refresh_token", "refresh_token": base.refresh_token}
        new = self._endpoint.request_tokens(params, requested_at=self._now())
        logger.info("Refreshed the pair (store key %s).", self.store_key)
        if new.refresh_token is None:  # RFC 6749 §6: the server may keep the refresh token
            new = dataclasses.replace(
                new, refresh_token=base.refresh_token, refresh_expires_at=base.refresh_expires_at
            )
        return new

    def _login(self, *, cause: ReauthenticationRequired | None) -> TokenSet:
        params = self.grant.login_params(self._endpoint.client_id)
        if params is None:
            if cause is not None:
                raise cause
            raise LoginRequired(
                "login_required", "No pair to renew and no credentials to log in with."
            )
        try:
            new = self._endpoint.request_tokens(params, requested_at=self._now())
        except ReauthenticationRequired as refused:
            raise refused from cause
        logger.info("Logged in with %s (store key %s).", params["grant_type"], self.store_key)
        return new

    def _publish(self, base: TokenSet | None, new: TokenSet) -> TokenSet:
        """Store ``new``, unless another worker stored a newer pair since we read ``base``.

        That only happens when the lock could not be had: our pair is then a
        duplicate (made from a token the store had already moved past, inside
        the grace window). The store keeps the pair the others already use, and
        ours is revoked rather than left counting against the cap.
        """
        current = self.store.load(self.store_key)
        moved_on = current is not None and not current.same_pair(base)
        if moved_on and not self._due(current, self._now()):
            logger.warning("Another worker renewed the pair meanwhile: revoking our duplicate.")
            self._revoke_pair(new)
            return current
        self.store.save(self.store_key, new)
        return new

    def _forget(self, dead: TokenSet) -> None:
        """Drop a pair the server refused for good, unless the store already moved on."""
        if dead.same_pair(self.store.load(self.store_key)):
            self.store.delete(self.store_key)
        if dead.same_pair(self._current):
            self._current = None

    def _revoke_pair(self, tokens: TokenSet) -> None:
        if tokens.refresh_token is not None:
            self._endpoint.revoke(tokens.refresh_token, hint="refresh_token")
        else:
            self._endpoint.revoke(tokens.access_token, hint="access_token")


def _authorized(request: httpx.Request, tokens: TokenSet) -> httpx.Request:
    request.headers["Authorization"] = f"Bearer {tokens.access_token}"
    return request


#: PBKDF2 rounds for a password entering a store key: store keys are logged and name
#: files and Redis keys, so one must not be a fast test of password guesses.
_PASSWORD_ROUNDS = 200_000
_password_digests: dict[str, str] = {}
_password_digests_lock = threading.Lock()


def _store_key(token_url: str, client_id: str, client_secret: str | None, grant: Grant) -> str:
    """Where the pair comes from, and a digest of the credentials it took to get it.

    With the credentials in the key, an auth object given a wrong secret or a
    wrong password never finds the pair of one given the right ones: it logs in
    and fails. Only digests enter: the client secret (256 random bits) by
    SHA-256, a password given as a string by PBKDF2. A password callback is not
    called here (only at a login), so objects with the same client, secret and
    username share the pair whatever their callbacks would answer.
    """
    where = [token_url, client_id, grant.principal]
    secret = "none" if client_secret is None else _sha256(client_secret)
    password = grant.password if isinstance(grant, PasswordGrant) else None
    if isinstance(password, str):
        proof = _password_digest(password, salt=json.dumps(where))
    else:
        proof = "callback" if callable(password) else "none"
    return _sha256(json.dumps([*where, secret, proof]))[:32]


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _password_digest(password: str, *, salt: str) -> str:
    """PBKDF2 of ``password``, computed once per process (auth objects may be made per request)."""
    # Remembered under a digest, so the memo does not keep the password itself.
    memo = _sha256(json.dumps([salt, password]))
    with _password_digests_lock:
        known = _password_digests.get(memo)
    if known is not None:
        return known
    derived = hashlib.pbkdf2_hmac(
        "sha256", password.encode(), salt.encode(), _PASSWORD_ROUNDS
    ).hex()
    with _password_digests_lock:
        if len(_password_digests) >= 256:
            _password_digests.clear()
        _password_digests[memo] = derived
    return derived
