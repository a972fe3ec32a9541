"""The token and revocation endpoints as seen from a client: RFC 6749 and RFC 7009 over httpx.

Token requests are rare (a login, then one refresh per rotation), so they use a
plain synchronous ``httpx.Client`` of their own, also from the async flow
(which runs them in a worker thread; see ``auth.py``): one code path, and the
event loop never blocks on the store's lock.
"""

from __future__ import annotations

import base64
import logging
from urllib.parse import quote_plus

import httpx

from .errors import TokenEndpointUnavailable, error_for_response
from .tokens import TokenSet

logger = logging.getLogger("token_lifecycle.client")

DEFAULT_TIMEOUT = httpx.Timeout(10.0)


class TokenEndpoint:
    """Sends token and revocation requests with the client's authentication.

    ``client_auth`` is ``"basic"`` (HTTP Basic, RFC 6749 §2.3.1, the default) or
    ``"body"`` (``client_id``/``client_secret`` form fields). A public client
    (no secret) sends its ``client_id`` in the body either way.
    """

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str | None = None,
        *,
        client_auth: str = "basic",
        revocation_url: str | None = None,
        http_client: httpx.Client | None = None,
    ) -> None:
        if client_auth not in ("basic", "body"):
            raise ValueError("client_auth must be 'basic' or 'body'")
        self.token_url = token_url
        self.revocation_url = revocation_url
        self.client_id = client_id
        self._client_secret = client_secret
        self._client_auth = client_auth
        self._http = http_client
        self._owns_http = http_client is None

    def request_tokens(self, params: dict[str, str], *, requested_at: float) -> TokenSet:
        """POST a token request; the new pair, or the mapped :class:`TokenEndpointError`.

        ``requested_at`` is the client's clock just before sending: expiry
        instants are counted from it (see ``tokens.py``).
        """
        response = self._post(self.token_url, params)
        body = _json_or_none(response)
        if response.status_code == 200:
            return TokenSet.from_token_response(body, requested_at=requested_at)
        error, description, reason = _error_fields(body)
        refusal = error_for_response(
            response.status_code,
            error,
            description,
            grant_type=params.get("grant_type", ""),
            reason=reason,
        )
        if isinstance(refusal, TokenEndpointUnavailable):
            refusal.retry_after = _retry_after(response)
        raise refusal

    def revoke(self, token: str, *, hint: str = "refresh_token") -> bool:
        """RFC 7009: revoke the pair holding ``token``. False (logged) if that failed."""
        if not self.revocation_url:
            logger.warning("No revocation URL: a pair that should be revoked stays live.")
            return False
        try:
            response = self._post(self.revocation_url, {"token": token, "token_type_hint": hint})
        except httpx.HTTPError as error:
            logger.warning("Revoking a pair failed: %s", error)
            return False
        if response.status_code != 200:
            logger.warning("Revoking a pair failed: HTTP %s", response.status_code)
        return response.status_code == 200

    def close(self) -> None:
        if self._owns_http and self._http is not None:
            self._http.close()
            self._http = None

    def _post(self, url: str, params: dict[str, str]) -> httpx.Response:
        headers = {"Accept": "application/json"}
        data = dict(params)
        if self._client_secret is not None and self._client_auth == "basic":
            headers["Authorization"] = _basic(self.client_id, self._client_secret)
        else:
            data["client_id"] = self.client_id
            if self._client_secret is not None:
                data["client_secret"] = self._client_secret
        return self._client().post(url, data=data, headers=headers)

    def _client(self) -> httpx.Client:
        if self._http is None:
            self._http = httpx.Client(timeout=DEFAULT_TIMEOUT)
        return self._http


def _basic(client_id: str, secret: str) -> str:
    """RFC 6749 §2.3.1: both parts form-urlencoded before base64 (httpx.BasicAuth does not)."""
    raw = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


def _json_or_none(response: httpx.Response) -> object:
    try:
        return response.json()
    except ValueError:
        return None


def _retry_after(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds (the HTTP-date form is not used by this server)."""
    try:
        seconds = float(response.headers.get("retry-after", ""))
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def _error_fields(body: object) -> tuple[str, str, object]:
    """``error``, ``error_description`` and ``reason`` (unchecked: see ``refresh_refusal``)."""
    if not isinstance(body, dict):
        return "invalid_response", "The token endpoint answered without an RFC 6749 error.", None
    error, description = body.get("error"), body.get("error_description")
    return (
        error if isinstance(error, str) else "invalid_response",
        description if isinstance(description, str) else "",
        body.get("reason"),
    )
