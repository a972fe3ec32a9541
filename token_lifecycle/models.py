"""Clients, token pairs and signing keys.

The models hold state; the rules that change it live in :mod:`.rules` (pure)
and :mod:`.services` (transactional). Secrets are never stored: a client secret
and a refresh token are kept as SHA-256 digests, a private signing key only
encrypted (see :mod:`.keys`).
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.db.models.functions import Coalesce, Greatest

from . import clock, credentials, origins, redirect_uris
from .conf import SIGNING_ALGORITHMS, duration_problem, lifecycle_settings
from .rules import Policy, RevokeReason


class _UUID7:
    """Time-ordered UUIDs (RFC 9562 version 7), increasing within this process.

    Pair ids are primary keys: ids that grow with time keep PostgreSQL's
    B-tree inserts at the right edge of the index instead of scattered over it,
    and they break ties between pairs issued in the same second (the cap evicts
    the oldest). Within one millisecond, or under a frozen clock, an id is the
    previous one plus one in its 122 free bits (RFC 9562 §6.2: the random part
    doubles as a counter), so ids made here never go backwards.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = 0  # the 122 free bits: 48 of milliseconds, 74 random

    def __call__(self) -> uuid.UUID:
        milliseconds = time.time_ns() // 1_000_000
        candidate = milliseconds << 74 | int.from_bytes(os.urandom(10), "big") >> 6
        with self._lock:
            candidate = max(candidate, self._last + 1)
            self._last = candidate
        return uuid.UUID(int=self._with_version_and_variant(candidate))

    @staticmethod
    def _with_version_and_variant(free: int) -> int:
        """Spread 122 free bits around the version (4 bits: 7) and variant (2 bits: 10)."""
        timestamp_and_rand_a = free >> 62  # 48 + 12 bits
        rand_b = free & ((1 << 62) - 1)
        timestamp, rand_a = timestamp_and_rand_a >> 12, timestamp_and_rand_a & 0xFFF
        return timestamp << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b


uuid7 = _UUID7()


class GrantType(models.TextChoices):
    AUTHORIZATION_CODE = "authorization_code", "authorization code"
    CLIENT_CREDENTIALS = "client_credentials", "client credentials"
    PASSWORD = "password", "password (legacy, RFC 9700 §2.4)"
    REFRESH_TOKEN = "refresh_token", "refresh token"


#: Grants a client may be configured with; ``refresh_token`` is implied for all.
CONFIGURABLE_GRANTS = (
    GrantType.AUTHORIZATION_CODE,
    GrantType.CLIENT_CREDENTIALS,
    GrantType.PASSWORD,
)


def validate_grant_types(value: str) -> None:
    unknown = set(value.split()) - {grant.value for grant in CONFIGURABLE_GRANTS}
    if unknown:
        raise ValidationError(f"Unknown grant types: {', '.join(sorted(unknown))}.")


class Client(models.Model):
    """An API client: a partner's servers, a mobile app, a first-party SPA.

    A confidential client authenticates with its secret; a public client (an
    app that cannot keep a secret) sends its ``client_id`` only. Each of the
    four nullable lifecycle fields overrides the project-wide setting of the
    same name for this client's pairs; null means "use the setting".
    """

    name = models.CharField(max_length=200)
    client_id = models.CharField(
        max_length=64, unique=True, default=credentials.new_client_id, editable=False
    )
    #: SHA-256 of the secret; empty for public clients.
    client_secret_digest = models.CharField(max_length=64, blank=True, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="token_clients",
        help_text="Client-credentials pairs act as this user.",
    )
    is_public = models.BooleanField(
        default=False, help_text="Public clients cannot keep a secret and send client_id only."
    )
    grant_types = models.CharField(
        max_length=100,
        default=GrantType.CLIENT_CREDENTIALS,
        validators=[validate_grant_types],
        help_text="Space-separated: authorization_code, client_credentials, password. "
        "Refreshing is always allowed.",
    )
    scope = models.CharField(
        max_length=1000,
        blank=True,
        help_text="Space-separated scopes this client may request; empty for none.",
    )
    is_active = models.BooleanField(default=True)
    can_introspect = models.BooleanField(
        default=False,
        help_text="A resource server: may introspect tokens issued to any client (RFC 7662).",
    )
    client_credentials_refresh = models.BooleanField(
        "refresh token with client credentials",
        default=True,
        help_text="Include a refresh token in client_credentials answers. RFC 6749 §4.4.3 "
        "says it SHOULD NOT; on by default because clients running on several servers "
        "refresh one family through its grace window. Off: the client logs in again "
        "with its credentials when the access token expires.",
    )
    redirect_uris = models.TextField(
        "redirect URIs",
        blank=True,
        help_text="For the authorization_code grant: one per line, compared exactly, "
        "except that a loopback http://127.0.0.1/... or http://[::1]/... URI matches any "
        "port. https, loopback http, or a private-use scheme (com.example.app:/callback).",
    )
    skip_consent = models.BooleanField(
        default=False,
        help_text="A first-party app: users who log in are not asked to approve it.",
    )
    refresh_token_in_cookie = models.BooleanField(
        "refresh token in a cookie",
        default=False,
        help_text="Browser mode: the refresh token is set as an HttpOnly cookie instead of "
        "being returned in the JSON body, and a refresh may come from that cookie.",
    )
    allowed_origins = models.TextField(
        blank=True,
        help_text="Browser mode: the origins (scheme://host[:port], one per line) whose "
        "pages may refresh from the cookie; the token endpoint answers CORS for them only.",
    )
    created_at = models.DateTimeField(default=clock.now, editable=False)

    access_token_lifetime = models.DurationField(null=True, blank=True)
    refresh_token_lifetime = models.DurationField(null=True, blank=True)
    refresh_grace_period = models.DurationField(null=True, blank=True)
    max_pairs_per_client = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)]
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.client_id})"

    def set_new_secret(self) -> str:
        """Generate a secret, keep its digest, and return it: the only time it is seen."""
        secret = credentials.new_client_secret()
        self.client_secret_digest = credentials.digest(secret)
        return secret

    def check_secret(self, secret: str) -> bool:
        return bool(self.client_secret_digest) and credentials.matches(
            secret, self.client_secret_digest
        )

    def allows_grant(self, grant_type: str) -> bool:
        return grant_type == GrantType.REFRESH_TOKEN or grant_type in self.grant_types.split()

    @property
    def allowed_scopes(self) -> frozenset[str]:
        return frozenset(self.scope.split())

    @property
    def redirect_uri_list(self) -> list[str]:
        return self.redirect_uris.split()

    @property
    def origin_list(self) -> list[str]:
        return self.allowed_origins.split()

    def redirect_uri_matches(self, uri: str) -> bool:
        """Whether ``uri`` is one of this client's redirect URIs (:mod:`.redirect_uris`)."""
        return any(redirect_uris.matches(registered, uri) for registered in self.redirect_uri_list)

    def policy(self) -> Policy:
        """The lifecycle rules for this client: the settings with its overrides applied."""
        defaults = lifecycle_settings()

        def pick(override, default):
            return default if override is None else override

        return Policy(
            access_token_lifetime=pick(self.access_token_lifetime, defaults.access_token_lifetime),
            refresh_token_lifetime=pick(
                self.refresh_token_lifetime, defaults.refresh_token_lifetime
            ),
            refresh_grace_period=pick(self.refresh_grace_period, defaults.refresh_grace_period),
            max_pairs=pick(self.max_pairs_per_client, defaults.max_pairs_per_client),
            max_session_lifetime=defaults.max_session_lifetime,
            reuse_detection=defaults.reuse_detection,
        )

    def clean(self) -> None:
        errors = {}
        for name in ("access_token_lifetime", "refresh_token_lifetime", "refresh_grace_period"):
            value = getattr(self, name)
            problem = None if value is None else duration_problem(value)
            if problem:
                errors[name] = f"This lifetime {problem}"
        if not errors:
            policy = self.policy()
            if policy.refresh_grace_period >= policy.refresh_token_lifetime:
                errors["refresh_grace_period"] = "Must be shorter than the refresh token lifetime."
        grants = self.grant_types.split()
        if self.is_public and GrantType.CLIENT_CREDENTIALS in grants:
            errors["grant_types"] = "A public client cannot use the client_credentials grant."
        uri_problems = _each_problem(self.redirect_uri_list, redirect_uris.problem)
        if uri_problems:
            errors["redirect_uris"] = uri_problems
        elif GrantType.AUTHORIZATION_CODE in grants and not self.redirect_uri_list:
            errors["redirect_uris"] = "The authorization_code grant needs a redirect URI."
        origin_problems = _each_problem(self.origin_list, origins.problem)
        if origin_problems:
            errors["allowed_origins"] = origin_problems
        elif self.refresh_token_in_cookie and not self.origin_list:
            errors["allowed_origins"] = "A refresh token in a cookie needs an allowed origin."
        if errors:
            raise ValidationError(errors)


def _each_problem(values: list[str], problem_of: Callable[[str], str | None]) -> list[str]:
    """One message per value its rule refuses, the value (cut short) first."""
    return [f"{value[:100]} {problem}" for value in values if (problem := problem_of(value))]


class TokenPairQuerySet(models.QuerySet):
    """The lifecycle rules of :mod:`.rules` spelled in SQL; nothing else filters on them.

    Each rule is a ``Q`` (for ``Case``/``When`` and ``Exists``) and a filter.
    """

    @staticmethod
    def access_usable_q(now: datetime) -> Q:
        """``rules.access_usable``: not revoked and ``now < access_expires_at``."""
        return Q(revoked_at__isnull=True, access_expires_at__gt=now)

    @staticmethod
    def refresh_usable_q(now: datetime) -> Q:
        """``rules.refresh_usable``: not revoked, not expired, inside its grace window."""
        return Q(revoked_at__isnull=True, refresh_expires_at__gt=now) & (
            Q(refresh_grace_ends_at__isnull=True) | Q(refresh_grace_ends_at__gt=now)
        )

    @staticmethod
    def live_q(now: datetime) -> Q:
        """``rules.is_live``, as one indexed range: ``live_until`` is stored for this."""
        return Q(revoked_at__isnull=True, live_until__gt=now)

    @staticmethod
    def expired_q(now: datetime) -> Q:
        """Not revoked, and neither token usable any more."""
        return Q(revoked_at__isnull=True, live_until__lte=now)

    def access_usable(self, now: datetime) -> TokenPairQuerySet:
        return self.filter(self.access_usable_q(now))

    def refresh_usable(self, now: datetime) -> TokenPairQuerySet:
        return self.filter(self.refresh_usable_q(now))

    def live(self, now: datetime) -> TokenPairQuerySet:
        return self.filter(self.live_q(now))

    def expired(self, now: datetime) -> TokenPairQuerySet:
        return self.filter(self.expired_q(now))


class TokenPair(models.Model):
    """One access token and one refresh token, issued together, living and dying together.

    Pairs form families: a login starts a family, every refresh adds a child
    (``parent``) to it, and reuse detection revokes a family at once. The
    access token itself is not stored (it is a signed JWT whose ``jti`` is
    this row's id); the refresh token is stored as a digest.
    """

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="pairs")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="token_pairs"
    )
    #: The id of the family's first pair.
    family_id = models.UUIDField(db_index=True)
    # No database constraint: the purge deletes old parents while children live on.
    parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="children",
    )
    refresh_token_digest = models.CharField(max_length=64, unique=True, editable=False)
    scope = models.CharField(max_length=1000, blank=True)

    issued_at = models.DateTimeField()
    access_expires_at = models.DateTimeField()
    refresh_expires_at = models.DateTimeField()
    #: First use of the refresh token, which starts the grace window.
    rotated_at = models.DateTimeField(null=True, blank=True)
    #: ``rotated_at`` plus the grace period in force at that moment; never moves afterwards.
    refresh_grace_ends_at = models.DateTimeField(null=True, blank=True)
    #: The family's absolute end (``MAX_SESSION_LIFETIME``), copied to every pair of it.
    session_ends_at = models.DateTimeField(null=True, blank=True)
    #: When the pair stops being live unless revoked earlier (``rules.live_until``).
    live_until = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoke_reason = models.CharField(max_length=32, choices=RevokeReason.choices, blank=True)

    objects = TokenPairQuerySet.as_manager()

    class Meta:
        ordering = ["-issued_at"]
        indexes = [
            # The cap: live pairs of one principal, oldest first.
            models.Index(
                fields=["client", "user", "live_until"],
                name="tl_pair_principal_live",
                condition=Q(revoked_at__isnull=True),
            ),
            # Logout-all, password change, deactivation: live pairs of one user.
            models.Index(
                fields=["user", "live_until"],
                name="tl_pair_user_live",
                condition=Q(revoked_at__isnull=True),
            ),
            # purge_expired_tokens: pairs in the order they stopped mattering
            # (purge.dead_since(), the same expression), one range scan per batch.
            models.Index(
                Coalesce("revoked_at", Greatest("access_expires_at", "refresh_expires_at")),
                name="tl_pair_dead_since",
            ),
        ]

    def __str__(self) -> str:
        return str(self.id)


class SigningKeyQuerySet(models.QuerySet):
    def signing(self, now: datetime) -> SigningKeyQuerySet:
        """Keys in their signing period at ``now``, the one that signs first."""
        in_period = Q(signs_from__lte=now) & (Q(retired_at__isnull=True) | Q(retired_at__gt=now))
        return self.filter(in_period).order_by("-signs_from", "-id")

    def published(self, now: datetime) -> SigningKeyQuerySet:
        """Keys that verify at ``now``: what the JWKS lists, newest first."""
        return self.filter(Q(verify_until__isnull=True) | Q(verify_until__gt=now)).order_by(
            "-signs_from", "-id"
        )


class SigningKey(models.Model):
    """A key that signs access tokens; its public half verifies them.

    A key is published (JWKS, verification) from its creation until
    ``verify_until``, and signs from ``signs_from`` until ``retired_at``. A
    rotation publishes the new key before it signs, so that resource servers
    caching the JWKS know it by the time tokens carry its kid; the old key
    keeps verifying until every token it signed has expired. The private key
    is stored encrypted (:mod:`.keys.encryption`).
    """

    kid = models.CharField(max_length=64, unique=True, editable=False)
    algorithm = models.CharField(
        max_length=16, choices=[(name, name) for name in SIGNING_ALGORITHMS], editable=False
    )
    #: The private key as PKCS#8 DER, encrypted with AES-GCM (see :mod:`.keys.encryption`).
    private_key_ciphertext = models.TextField(editable=False)
    #: The public key as a JWK (RFC 7517), what the JWKS endpoint publishes.
    public_jwk = models.JSONField(editable=False)
    created_at = models.DateTimeField(default=clock.now, editable=False)
    signs_from = models.DateTimeField(default=clock.now)
    #: When a newer key took over signing; null while this one signs (or will).
    retired_at = models.DateTimeField(null=True, blank=True)
    #: When the key stops verifying and leaves the JWKS; null while it signs.
    verify_until = models.DateTimeField(null=True, blank=True)

    objects = SigningKeyQuerySet.as_manager()

    class Meta:
        ordering = ["-signs_from"]

    def __str__(self) -> str:
        return f"{self.kid} ({self.algorithm})"


class AuthorizationCode(models.Model):
    """An authorization code (RFC 6749 §4.1.2), stored as a digest, used at most once.

    It binds what the token request must repeat: the client, the user who
    consented, the redirect URI, the scopes and the PKCE challenge (RFC 7636).
    ``family_id`` is the family the exchange started: a second use of the
    code revokes it (RFC 6749 §4.1.2).
    """

    code_digest = models.CharField(max_length=64, unique=True, editable=False)
    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="codes")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="token_codes"
    )
    redirect_uri = models.CharField(max_length=redirect_uris.MAX_LENGTH)
    scope = models.CharField(max_length=1000, blank=True)
    #: The S256 challenge: base64url of SHA-256 of the verifier, 43 characters.
    code_challenge = models.CharField(max_length=128)
    created_at = models.DateTimeField(default=clock.now)
    expires_at = models.DateTimeField(db_index=True)
    used_at = models.DateTimeField(null=True, blank=True)
    family_id = models.UUIDField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"code for {self.client_id}/{self.user_id} at {self.created_at:%Y-%m-%d %H:%M:%S}"
