"""The resource-server example, and ``HasScope`` on both sides, with a live main server.

The example's views (``example_project.resource_server.urls``) run here with
``RemoteTokenAuthentication`` pointed at pytest-django's live server, so a
revocation made in the database is seen exactly as another service would see
it. ``HasScope`` is also checked on the main server, behind
``BearerTokenAuthentication``, where ``request.auth`` is an ``AccessToken``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from urllib.parse import urlencode

import pytest
from conftest import FORM, PASSWORD
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from example_project.resource_server import urls
from token_lifecycle import services
from token_lifecycle.authentication import BearerTokenAuthentication
from token_lifecycle.models import TokenPair
from token_lifecycle.permissions import HasScope
from token_lifecycle.remote import RemoteTokenAuthentication, discovery
from token_lifecycle.rules import RevokeReason

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def deployment(live_server, make_client, user, settings):
    """The live main server, an app client with scopes, and this process as resource server."""
    app, app_secret = make_client("app", scope="reports read")
    resource, resource_secret = make_client("resource server", can_introspect=True)
    settings.TOKEN_LIFECYCLE_REMOTE = {
        "ISSUER": f"{live_server.url}/auth",
        "CLIENT_ID": resource.client_id,
        "CLIENT_SECRET": resource_secret,
        "CACHE_SECONDS": 0,  # ask every time: a revocation is seen at once
    }
    discovery.forget()
    yield live_server.url, (app.client_id, app_secret)
    discovery.forget()


# The example's views take their authentication from its settings; this process runs the
# main project's, so the class its settings name is given here.
class ResourceView(urls.ResourceView):
    authentication_classes = [RemoteTokenAuthentication]


class ReportsView(urls.ReportsView):
    authentication_classes = [RemoteTokenAuthentication]


def login(base: str | None, app: tuple[str, str], scope: str | None = None, client=None) -> str:
    """A password login: over HTTP at ``base``, or through Django's test ``client``.

    The issuer is derived from the host a token is requested on: tokens for the
    resource server come from the live server's URL.
    """
    params = {"grant_type": "password", "username": "alice", "password": PASSWORD}
    if scope is not None:
        params["scope"] = scope
    params.update(client_id=app[0], client_secret=app[1])
    if client is not None:
        response = client.post("/auth/token/", urlencode(params), content_type=FORM)
        assert response.status_code == 200, response.content
        return response.json()["access_token"]
    request = urllib.request.Request(f"{base}/auth/token/", data=urlencode(params).encode())
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["access_token"]


def call(view, token: str):
    request = APIRequestFactory().get("/", HTTP_AUTHORIZATION=f"Bearer {token}")
    response = view.as_view()(request)
    response.render()
    return response


def test_the_example_accepts_a_token_and_names_the_caller(deployment, user):
    base, app = deployment
    token = login(base, app)
    response = call(ResourceView, token)
    assert response.status_code == 200, response.content
    body = json.loads(response.content)
    assert body["sub"] == str(user.pk) and body["username"] == "alice"
    assert body["client_id"] == app[0]
    assert body["token_id"] == str(TokenPair.objects.get().pk)


def test_the_example_sees_a_revocation_through_introspection(deployment):
    """What the JWKS-only example could not do: a revoked token is refused here too."""
    base, app = deployment
    token = login(base, app)
    assert call(ResourceView, token).status_code == 200
    services.revoke_pair(TokenPair.objects.get(), RevokeReason.LOGOUT)
    response = call(ResourceView, token)
    assert response.status_code == 401
    assert 'error="invalid_token"' in response["WWW-Authenticate"]


def test_the_example_reports_need_the_reports_scope(deployment):
    base, app = deployment
    assert call(ReportsView, login(base, app, scope="reports")).status_code == 200
    response = call(ReportsView, login(base, app, scope="read"))
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response["WWW-Authenticate"]
    assert 'scope="reports"' in response["WWW-Authenticate"]


class MainServerReports(APIView):
    authentication_classes = [BearerTokenAuthentication]
    permission_classes = [HasScope.of("reports")]

    def get(self, request):
        return Response({"scopes": sorted(request.auth.scopes)})


def test_has_scope_on_the_main_server_reads_the_access_tokens_scopes(client, make_client, user):
    _, secret = app = make_client("app", scope="reports read")
    app = (app[0].client_id, secret)
    response = call(MainServerReports, login(None, app, scope="reports", client=client))
    assert response.status_code == 200, response.content
    refused = call(MainServerReports, login(None, app, scope="read", client=client))
    assert refused.status_code == 403
    assert refused["WWW-Authenticate"].startswith('Bearer realm="api", error="insufficient_scope"')
    assert 'scope="reports"' in refused["WWW-Authenticate"]


def test_has_scope_on_the_main_server_without_a_token_is_a_401(db):
    response = MainServerReports.as_view()(APIRequestFactory().get("/"))
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_the_example_refuses_to_start_without_its_client_credentials():
    env = {
        name: value for name, value in os.environ.items() if not name.startswith("RESOURCE_SERVER")
    }
    env["DJANGO_SETTINGS_MODULE"] = "example_project.resource_server.settings"
    result = subprocess.run(
        [sys.executable, "-m", "django", "check"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "Set RESOURCE_SERVER_CLIENT_ID" in result.stderr
    assert "demo_setup" in result.stderr
