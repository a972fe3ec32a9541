"""The browser-mode example page at ``/spa/``: three static files and their configuration.

The page (``index.html``, ``spa.js``, ``spa.css``, no build step) is served by
these views rather than by ``django.contrib.staticfiles``, so that it works
with ``DEBUG`` off (the tests' live server, a plain ``runserver``) and so that
every file carries a strict content security policy: scripts and styles from
this origin only, no inline script, no framing.

The page learns its ``client_id`` from ``/spa/config.json``. Where it comes
from, simplest first to override: the ``SPA_CLIENT_ID`` setting when a project
sets it, else the active client named "Demo SPA", which ``manage.py
demo_setup`` creates (and the tests create). Nothing is hard-coded in the
JavaScript, and the client ID is no secret (the client is public).
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.http import Http404, HttpResponse, JsonResponse
from django.urls import reverse
from django.views.decorators.http import require_GET

from token_lifecycle.issuer import issuer_for
from token_lifecycle.models import Client

HERE = Path(__file__).resolve().parent
CLIENT_NAME = "Demo SPA"
#: The only files served, and their types: never a path taken from the URL.
FILES = {
    "index.html": "text/html; charset=utf-8",
    "spa.js": "text/javascript; charset=utf-8",
    "spa.css": "text/css; charset=utf-8",
}
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "img-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)


def _secured(response: HttpResponse) -> HttpResponse:
    response["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    # The page's URL holds the authorization code on return from /auth/authorize/.
    response["Referrer-Policy"] = "no-referrer"
    response["Cache-Control"] = "no-store"
    return response


@require_GET
def spa_file(request, name: str = "index.html") -> HttpResponse:
    """``GET /spa/`` and ``/spa/<file>``: one of the page's files, read from this directory."""
    if name not in FILES:
        raise Http404("No such file.")
    return _secured(HttpResponse((HERE / name).read_bytes(), content_type=FILES[name]))


def spa_client_id() -> str | None:
    configured = getattr(settings, "SPA_CLIENT_ID", None)
    if configured:
        return configured
    client = Client.objects.filter(name=CLIENT_NAME, is_active=True).order_by("pk").first()
    return client.client_id if client else None


@require_GET
def spa_config(request) -> JsonResponse:
    """``GET /spa/config.json``: the client ID, the issuer and the endpoints the page uses."""
    client_id = spa_client_id()
    if client_id is None:
        response = JsonResponse(
            {"error": f'No client "{CLIENT_NAME}": run manage.py demo_setup.'}, status=503
        )
        return _secured(response)
    return _secured(
        JsonResponse(
            {
                "client_id": client_id,
                # The `iss` every authorization response carries (RFC 9207), to compare.
                "issuer": issuer_for(request),
                "authorization_endpoint": reverse("token_lifecycle:authorize"),
                "token_endpoint": reverse("token_lifecycle:token"),
                "logout_endpoint": reverse("token_lifecycle:logout"),
                "whoami_endpoint": reverse("whoami"),
            }
        )
    )
