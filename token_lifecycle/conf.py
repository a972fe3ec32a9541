"""The app's settings: one ``TOKEN_LIFECYCLE`` dict, defaults, validation, one accessor.

Everything in the app reads configuration through :func:`lifecycle_settings`, which
returns a frozen, validated :class:`LifecycleSettings`. The object is cached and
rebuilt when Django's ``setting_changed`` signal fires, so ``override_settings``
in tests takes effect at once.

:func:`from_env` builds the dict from ``TOKEN_LIFECYCLE_<KEY>`` environment
variables, for settings modules configured by the environment.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Mapping
from datetime import timedelta
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed

SETTINGS_NAME = "TOKEN_LIFECYCLE"

SIGNING_ALGORITHMS = ("RS256", "ES256", "EdDSA")


@dataclasses.dataclass(frozen=True)
class LifecycleSettings:
    """Validated settings. Field names are the keys of ``TOKEN_LIFECYCLE``, lower-cased."""

    # docs/lifecycle.md: the lifecycle. The first four can be overridden per client.
    access_token_lifetime: timedelta = timedelta(days=15)
    refresh_token_lifetime: timedelta = timedelta(days=30)
    refresh_grace_period: timedelta = timedelta(hours=6)
    max_pairs_per_client: int = 10
    max_session_lifetime: timedelta | None = None
    reuse_detection: bool = True

    # docs/tokens.md: the access token.
    #: ``iss`` claim. ``None`` derives it from the request (scheme, host and the
    #: path the app is mounted at); set it when the API answers on several hosts.
    issuer: str | None = None
    #: ``aud`` claim added to access tokens and required on verification.
    audience: str | None = None
    signing_algorithm: str = "RS256"
    #: Tolerated clock skew for ``iat``/``nbf`` of tokens from other servers.
    #: It never extends a stored expiry (docs/lifecycle.md).
    leeway: timedelta = timedelta(seconds=30)
    #: Secret from which the key encrypting private signing keys at rest is
    #: derived. ``None`` uses ``SECRET_KEY``.
    key_encryption_secret: str | None = None
    #: ``Cache-Control: max-age`` of the JWKS. A rotated-in key is published this
    #: long before it signs, so every cached JWKS knows it by then.
    jwks_max_age: timedelta = timedelta(minutes=15)

    # Revocation sources (docs/lifecycle.md rule 4).
    revoke_on_password_change: bool = True
    revoke_on_user_deactivation: bool = True
    revoke_on_client_deactivation: bool = True

    #: ``purge_expired_tokens`` keeps dead pairs this long after they died, so
    #: that admins can still see recent revocations (``--older-than`` overrides).
    purge_retention: timedelta = timedelta(days=7)

    # The authorization code flow (docs/code-flow.md).
    #: How long an authorization code may be exchanged (RFC 6749 §4.1.2: short).
    authorization_code_lifetime: timedelta = timedelta(seconds=60)

    # Browser mode (docs/browser-mode.md).
    #: The cookie holding the refresh token of a ``refresh_token_in_cookie`` client.
    refresh_cookie_name: str = "tl_refresh"

    # The per-request path.
    #: Cache alias holding validation results (see ``cache.py``). A shared
    #: cache (Redis) makes a revocation visible to every process on the next
    #: request; a per-process cache, within VALIDATION_CACHE_SECONDS.
    cache_alias: str = "default"
    #: How long a validated pair, user or client may be reused without the
    #: database (0 to 300 s; 0 disables the cache).
    validation_cache_seconds: int = 300

    # HTTP.
    #: Token-endpoint bodies above this size are refused with 413 before parsing.
    max_request_body_bytes: int = 16 * 1024
    #: Bearer credentials longer than this are refused without being decoded.
    max_bearer_token_bytes: int = 8 * 1024


_DURATIONS = (
    "access_token_lifetime",
    "refresh_token_lifetime",
    "refresh_grace_period",
    "max_session_lifetime",
    "leeway",
    "jwks_max_age",
    "purge_retention",
    "authorization_code_lifetime",
)
_POSITIVE_INTS = ("max_pairs_per_client", "max_request_body_bytes", "max_bearer_token_bytes")
_OPTIONAL = ("max_session_lifetime", "issuer", "audience", "key_encryption_secret")
#: RFC 6265 §4.1.1 cookie-name: an RFC 2616 token.
_COOKIE_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+\-.^_`|~]+\Z")
_FIELD_NAMES = {field.name for field in dataclasses.fields(LifecycleSettings)}


def validate(raw: Any) -> tuple[LifecycleSettings | None, list[str]]:
    """Check a ``TOKEN_LIFECYCLE`` value; return the settings and a list of problems.

    Each problem names the offending key, so the system check (and the
    ``ImproperlyConfigured`` raised by :func:`lifecycle_settings`) says exactly
    what to fix.
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        return None, [f"{SETTINGS_NAME} must be a dict, not {type(raw).__name__}."]
    values, errors = checked_values(raw, SETTINGS_NAME, _FIELD_NAMES, _check_value)
    if errors:
        return None, errors
    result = LifecycleSettings(**values)
    if result.refresh_grace_period >= result.refresh_token_lifetime:
        errors.append(
            f"{SETTINGS_NAME}['REFRESH_GRACE_PERIOD'] must be shorter than REFRESH_TOKEN_LIFETIME."
        )
    return (None, errors) if errors else (result, [])


def checked_values(
    raw: dict,
    setting_name: str,
    field_names: set[str],
    check_value: Callable[[str, Any], str | None],
) -> tuple[dict[str, Any], list[str]]:
    """The valid entries of a settings dict by lower-cased name, and a problem per bad key."""
    errors: list[str] = []
    values: dict[str, Any] = {}
    for key, value in raw.items():
        name = str(key).lower()
        if not isinstance(key, str) or key != key.upper() or name not in field_names:
            errors.append(f"{setting_name}[{key!r}] is not a known setting.")
            continue
        problem = check_value(name, value)
        if problem:
            errors.append(f"{setting_name}[{key!r}] {problem}")
        else:
            values[name] = value
    return values, errors


def _check_value(name: str, value: Any) -> str | None:
    if value is None:
        return None if name in _OPTIONAL else "must not be None."
    if name in _DURATIONS:
        return duration_problem(
            value, allow_zero=name in ("leeway", "jwks_max_age", "purge_retention")
        )
    if name in _POSITIVE_INTS:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            return "must be a positive integer."
        return None
    if name == "reuse_detection" or name.startswith("revoke_on_"):
        return None if isinstance(value, bool) else "must be True or False."
    if name == "validation_cache_seconds":
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 300:
            return "must be an integer from 0 to 300 (seconds)."
        return None
    if name == "refresh_cookie_name":
        if not isinstance(value, str) or not _COOKIE_NAME.match(value):
            return "must be a cookie name: letters, digits and !#$%&'*+-.^_`|~ (RFC 6265)."
        if value.lower().startswith("__host-"):
            # Browsers accept a __Host- cookie only with Path=/; ours is the token endpoint's.
            return "must not start with __Host- (the cookie's Path is the token endpoint)."
        return None
    if name == "signing_algorithm":
        if value not in SIGNING_ALGORITHMS:
            return f"must be one of {', '.join(SIGNING_ALGORITHMS)}."
        return None
    if not isinstance(value, str) or not value:
        return "must be a non-empty string."
    return None


def duration_problem(value: Any, *, allow_zero: bool = False) -> str | None:
    """What is wrong with a lifetime (settings and per-client overrides), or None."""
    if not isinstance(value, timedelta):
        return f"must be a datetime.timedelta, not {type(value).__name__}."
    if value % timedelta(seconds=1):
        # Token timestamps are whole seconds (JWT NumericDate), so are lifetimes.
        return "must be a whole number of seconds."
    if allow_zero:
        return None if value >= timedelta(0) else "must not be negative."
    return None if value > timedelta(0) else "must be a positive duration."


def settings_reader(name: str, validate: Callable[[Any], tuple[Any, list[str]]]) -> Callable:
    """The accessor of the settings dict ``name``: validated once, again when it changes.

    It raises ``ImproperlyConfigured`` with every problem ``validate`` found.
    """

    @lru_cache(maxsize=1)
    def read() -> Any:
        result, errors = validate(getattr(settings, name, None))
        if result is None:
            raise ImproperlyConfigured(" ".join(errors))
        return result

    def reset(*, setting: str, **kwargs: Any) -> None:
        if setting == name:
            read.cache_clear()

    setting_changed.connect(reset, weak=False)
    return read


#: The validated settings; the one way the app reads its configuration.
lifecycle_settings: Callable[[], LifecycleSettings] = settings_reader(SETTINGS_NAME, validate)


# -- From the environment -------------------------------------------------------

ENV_PREFIX = SETTINGS_NAME + "_"

_DURATION = re.compile(r"(?:([0-9]+)w)?(?:([0-9]+)d)?(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?")
_DURATION_UNITS = (
    timedelta(weeks=1),
    timedelta(days=1),
    timedelta(hours=1),
    timedelta(minutes=1),
    timedelta(seconds=1),
)
_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")


def parse_duration(text: str) -> timedelta:
    """``15m``, ``6h``, ``30d``, ``45s``, ``2w`` or several largest first (``1h30m``).

    Raises ``ValueError`` saying how to write one. Shared by :func:`from_env` and
    ``manage.py create_client``.
    """
    match = _DURATION.fullmatch(text.strip())
    if not text.strip() or match is None:
        hint = f" (did you mean {text.strip()}s?)" if text.strip().isdigit() else ""
        raise ValueError(
            "is not a duration: write a whole number and a unit, largest first, "
            f"from w, d, h, m, s, such as 15m, 6h, 30d or 1h30m{hint}."
        )
    return sum(
        (
            int(count) * unit
            for count, unit in zip(match.groups(), _DURATION_UNITS, strict=True)
            if count
        ),
        timedelta(0),
    )


def _parse_int(text: str) -> int:
    if re.fullmatch(r"-?[0-9]+", text.strip()) is None:
        raise ValueError("is not a whole number.")
    return int(text)


def _parse_bool(text: str) -> bool:
    word = text.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ValueError("is not a boolean: use true/false, 1/0 or yes/no.")


def _parser(name: str) -> Callable[[str], Any]:
    if name in _DURATIONS:
        return parse_duration
    if name in _POSITIVE_INTS or name == "validation_cache_seconds":
        return _parse_int
    if name == "reuse_detection" or name.startswith("revoke_on_"):
        return _parse_bool
    return str  # strings are taken as they are


def from_env(
    base: Mapping[str, Any] | None = None, *, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """A ``TOKEN_LIFECYCLE`` dict: ``base`` with ``TOKEN_LIFECYCLE_<KEY>`` variables over it.

    Durations are written ``15m``, ``30d``, ``6h``, ``45s``, ``2w`` or combined
    largest first (``1h30m``); integers in decimal; booleans ``true``/``false``,
    ``1``/``0``, ``yes``/``no``; strings as they are. ``none`` or an empty value
    sets an optional key (``MAX_SESSION_LIFETIME``, ``ISSUER``, ``AUDIENCE``,
    ``KEY_ENCRYPTION_SECRET``) to ``None``. Only variables named after a setting
    are read; others with the prefix are left alone (the test suite has some).

    A value that does not parse, or that the setting refuses, raises
    ``ImproperlyConfigured`` naming the variable, at start-up rather than at
    the first token. ``environ`` defaults to ``os.environ``.
    """
    environ = os.environ if environ is None else environ
    result = dict(base or {})
    for field in dataclasses.fields(LifecycleSettings):
        variable = ENV_PREFIX + field.name.upper()
        if variable not in environ:
            continue
        text = environ[variable]
        # The secret never appears in a message; other values help to spot the typo.
        shown = "" if "secret" in field.name else f"={text!r}"
        try:
            if field.name in _OPTIONAL and text.strip().lower() in ("", "none"):
                value = None
            elif not text.strip():
                raise ValueError("is empty: give a value, or leave the variable unset.")
            else:
                value = _parser(field.name)(text)
        except ValueError as error:
            raise ImproperlyConfigured(f"{variable}{shown} {error}") from None
        problem = _check_value(field.name, value)
        if problem:
            raise ImproperlyConfigured(f"{variable}{shown}: the value {problem}")
        result[field.name.upper()] = value
    return result
