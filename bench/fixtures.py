"""The benchmark's users, clients and tokens, the same for every package.

``python bench/fixtures.py`` (run by run.py once per stack, on a fresh
database) migrates and creates:

- users ``alice`` (authentication benchmarks), ``bob`` (refresh chains),
  ``carol`` (password grants) and ``owner`` (owns the clients; client
  credentials act as him), all with the same password hashed by Django's
  default hasher (PBKDF2-SHA256). Separate users keep one benchmark's pairs
  from counting against another's cap;
- token_lifecycle clients: ``conf`` (confidential; client_credentials and
  password), ``pub`` (public; password), ``code`` (public; authorization
  code with PKCE, redirect URI :data:`REDIRECT_URI`) and ``fresh`` (confidential, with a
  cap high enough that the thousands of pairs issued for the "fresh pair"
  measurement are never evicted);
- django-oauth-toolkit applications: ``conf_password``, ``pub_password``
  (password grant, so refresh too), ``conf_cc`` (client credentials) and
  ``pub_code`` (public; authorization code, the same redirect URI);
  confidential secrets are hashed by DOT with the password hasher, its default.

Secrets are generated here and written to ``fixtures-<stack>.json`` in the
work directory, the only place they exist in clear. The helpers below issue
one token of each package for a user, the way each package documents it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from common import PASSWORD, setup_django

REDIRECT_URI = "https://app.example.com/callback"


def fixtures_file() -> Path:
    """Where the secrets of this database's fixtures are kept (one file per database)."""
    database = Path(urlsplit(os.environ["BENCH_DATABASE_URL"]).path).stem
    return Path(os.environ["BENCH_WORKDIR"]) / f"fixtures-{database}.json"


def create() -> dict:
    """Migrate and create the fixtures; returns the secrets (also written to disk)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.core.management import call_command
    from oauth2_provider.models import Application
    from oauth2_provider.settings import oauth2_settings

    from token_lifecycle.models import Client

    call_command("migrate", verbosity=0)
    user_model = get_user_model()
    hashed = make_password(PASSWORD)  # one PBKDF2 run, shared by the users
    users = {
        name: user_model.objects.create(username=name, password=hashed)
        for name in ("alice", "bob", "carol", "owner")
    }
    secrets: dict = {"ours": {}, "dot": {}}
    for name, public, grants, cap in (
        ("conf", False, "client_credentials password", None),
        ("pub", True, "password", None),
        ("code", True, "authorization_code", None),
        ("fresh", False, "client_credentials password", 1_000_000),
    ):
        client = Client(
            name=f"bench-{name}",
            owner=users["owner"],
            is_public=public,
            grant_types=grants,
            redirect_uris=REDIRECT_URI if "authorization_code" in grants else "",
            max_pairs_per_client=cap,
        )
        secret = None if public else client.set_new_secret()
        client.save()
        secrets["ours"][name] = {"client_id": client.client_id, "secret": secret}
    for name, client_type, grant in (
        ("conf_password", Application.CLIENT_CONFIDENTIAL, Application.GRANT_PASSWORD),
        ("pub_password", Application.CLIENT_PUBLIC, Application.GRANT_PASSWORD),
        ("conf_cc", Application.CLIENT_CONFIDENTIAL, Application.GRANT_CLIENT_CREDENTIALS),
        ("pub_code", Application.CLIENT_PUBLIC, Application.GRANT_AUTHORIZATION_CODE),
    ):
        secret = oauth2_settings.CLIENT_SECRET_GENERATOR_CLASS().hash()
        app = Application.objects.create(
            name=f"bench-{name}",
            user=users["owner"],
            client_type=client_type,
            authorization_grant_type=grant,
            client_secret=secret,  # hashed on save (hash_client_secret=True)
            redirect_uris=REDIRECT_URI if grant == Application.GRANT_AUTHORIZATION_CODE else "",
        )
        confidential = client_type == Application.CLIENT_CONFIDENTIAL
        secrets["dot"][name] = {
            "client_id": app.client_id,
            "secret": secret if confidential else None,
        }
    fixtures_file().write_text(json.dumps(secrets, indent=2))
    return secrets


@dataclass
class Fixtures:
    secrets: dict

    def user(self, name: str):
        from django.contrib.auth import get_user_model

        return get_user_model().objects.get(username=name)

    def client(self, name: str):
        from token_lifecycle.models import Client

        return Client.objects.get(client_id=self.secrets["ours"][name]["client_id"])

    def application(self, name: str):
        from oauth2_provider.models import Application

        return Application.objects.get(client_id=self.secrets["dot"][name]["client_id"])


def load() -> Fixtures:
    return Fixtures(json.loads(fixtures_file().read_text()))


# -- One token of each package ----------------------------------------------------


def ours_pair(client, user, issuer: str):
    """A token_lifecycle pair (``IssuedPair``: ``access_token``, ``refresh_token``, ``pair``)."""
    from token_lifecycle import services
    from token_lifecycle.models import GrantType

    return services.issue_pair(
        client=client, user=user, issuer=issuer, grant_type=GrantType.PASSWORD
    )


def simplejwt_tokens(user) -> tuple[str, str]:
    """``(refresh, access)``: simplejwt's ``RefreshToken.for_user`` (outstanding, RS256)."""
    from rest_framework_simplejwt.tokens import RefreshToken

    refresh = RefreshToken.for_user(user)
    return str(refresh), str(refresh.access_token)


def dot_tokens(user, application) -> tuple[str, str]:
    """``(refresh, access)``: a DOT access token and refresh token, as its grants store them."""
    from django.utils import timezone
    from oauth2_provider.models import AccessToken, RefreshToken
    from oauthlib.common import generate_token

    access = AccessToken.objects.create(
        user=user,
        application=application,
        token=generate_token(),
        expires=timezone.now() + timedelta(days=15),
        scope="read write",
    )
    refresh = generate_token()
    RefreshToken.objects.create(
        user=user, application=application, token=refresh, access_token=access
    )
    return refresh, access.token


def ours_code(client, user, challenge: str) -> str:
    """A token_lifecycle authorization code, as the authorize endpoint issues it on consent."""
    from token_lifecycle import authorization_codes

    return authorization_codes.issue(
        client=client, user=user, redirect_uri=REDIRECT_URI, scope="", code_challenge=challenge
    )


def dot_code(user, application, challenge: str) -> str:
    """A DOT authorization code (its ``Grant`` row), as its authorize view stores it on consent."""
    from django.utils import timezone
    from oauth2_provider.models import Grant
    from oauthlib.common import generate_token

    code = generate_token()
    Grant.objects.create(
        user=user,
        application=application,
        code=code,
        expires=timezone.now() + timedelta(seconds=60),
        redirect_uri=REDIRECT_URI,
        scope="read",
        code_challenge=challenge,
        code_challenge_method="S256",
    )
    return code


def knox_token(user) -> str:
    """A knox token: ``AuthToken.objects.create`` returns the instance and the token."""
    from knox.models import AuthToken

    return AuthToken.objects.create(user=user)[1]


if __name__ == "__main__":
    setup_django()
    create()
