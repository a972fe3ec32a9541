"""``manage.py demo_setup``: the demo admin, user and clients, and sessions to try.

Idempotent: run it again and it resets the demo passwords and gives the demo
client a new secret (the old one cannot be shown again: only its hash is kept).
The public code-flow clients "Demo app" and "Demo SPA" (browser mode, the page
at /spa/) are created once and kept.
"""

from urllib.parse import quote

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from token_lifecycle.models import Client

ADMIN = ("admin", "admin")
DEMO_USER = ("demo", "demo-password")
BASE_URL = "http://127.0.0.1:8000"
#: Loopback: the same URI on any port matches it (RFC 8252 §7.3).
DEMO_APP_REDIRECT_URI = "http://127.0.0.1:8765/callback"
#: The example single-page app (example_project/spa/), found by this name by /spa/config.json.
SPA_NAME = "Demo SPA"
SPA_URL = f"{BASE_URL}/spa/"


class Command(BaseCommand):
    help = "Create the demo admin, user and client, and print how to call the API."

    def handle(self, *args, **options):
        users = get_user_model().objects
        admin, _ = users.get_or_create(
            username=ADMIN[0], defaults={"is_staff": True, "is_superuser": True}
        )
        admin.set_password(ADMIN[1])
        admin.save()
        demo, _ = users.get_or_create(username=DEMO_USER[0])
        demo.set_password(DEMO_USER[1])
        demo.save()

        client = Client.objects.filter(name="Demo client").first() or Client(
            name="Demo client", owner=admin, grant_types="client_credentials password"
        )
        secret = client.set_new_secret()
        client.save()
        app = Client.objects.filter(name="Demo app").first() or Client(
            name="Demo app",
            owner=admin,
            is_public=True,
            grant_types="authorization_code",
            redirect_uris=DEMO_APP_REDIRECT_URI,
            skip_consent=False,
        )
        app.full_clean()
        app.save()
        spa = Client.objects.filter(name=SPA_NAME).first() or Client(
            name=SPA_NAME,
            owner=admin,
            is_public=True,
            grant_types="authorization_code",
            redirect_uris=SPA_URL,
            skip_consent=True,
            # Browser mode: the refresh token in an HttpOnly cookie, refreshed from this origin.
            refresh_token_in_cookie=True,
            allowed_origins=BASE_URL,
        )
        spa.full_clean()
        spa.save()
        # make resource-server introspects as this client (no grant of its own needed).
        resource = Client.objects.filter(name="Resource server").first() or Client(
            name="Resource server", owner=admin, can_introspect=True
        )
        resource_secret = resource.set_new_secret()
        resource.save()
        self.stdout.write(self._instructions(client.client_id, secret))
        self.stdout.write(self._code_flow(app.client_id))
        self.stdout.write(self._spa())
        self.stdout.write(self._resource_server(resource.client_id, resource_secret))

    def _resource_server(self, client_id: str, secret: str) -> str:
        return f"""
Another service that accepts these tokens and sees revocations (token_lifecycle.remote):

  export RESOURCE_SERVER_CLIENT_ID={client_id}
  export RESOURCE_SERVER_CLIENT_SECRET={secret}
  make resource-server        # in another terminal: serves on 127.0.0.1:8001
  curl -s -H "Authorization: Bearer $ACCESS" http://127.0.0.1:8001/api/resource/; echo
"""

    def _spa(self) -> str:
        return f"""
Log in from a single-page app (browser mode: the refresh token in an HttpOnly cookie):

  Open {SPA_URL} (this exact host: the client's origin is {BASE_URL})
  and log in as {DEMO_USER[0]!r} / {DEMO_USER[1]!r}.
"""

    def _code_flow(self, app_id: str) -> str:
        challenge = (
            "python3 -c 'import base64,hashlib,sys; print(base64.urlsafe_b64encode("
            'hashlib.sha256(sys.argv[1].encode()).digest()).rstrip(b"=").decode())\''
        )
        redirect = quote(DEMO_APP_REDIRECT_URI, safe="")
        return f"""
Log in through an app (authorization code flow with PKCE; recommended):

  APP_ID={app_id}

  # 1. A one-time verifier and its S256 challenge
  VERIFIER=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')
  CHALLENGE=$({challenge} "$VERIFIER")

  # 2. Open this URL in a browser, sign in as {DEMO_USER[0]!r} / {DEMO_USER[1]!r}, click Allow
  echo "{BASE_URL}/auth/authorize/?response_type=code&client_id=$APP_ID\
&redirect_uri={redirect}&state=demo&code_challenge=$CHALLENGE&code_challenge_method=S256"

  # 3. The browser goes to {DEMO_APP_REDIRECT_URI}?code=...: nothing listens
  #    there, so copy the code from the address bar. It works once, within 60 seconds.
  CODE=paste-the-code-here
  curl -s -d grant_type=authorization_code -d client_id="$APP_ID" \\
       --data-urlencode "code=$CODE" -d redirect_uri={DEMO_APP_REDIRECT_URI} \\
       -d code_verifier="$VERIFIER" {BASE_URL}/auth/token/; echo
"""

    def _instructions(self, client_id: str, secret: str) -> str:
        extract = "python3 -c 'import json,sys; print(json.load(sys.stdin)[\"{}\"])'"
        return f"""
Demo ready.  Admin: {BASE_URL}/admin/  (user {ADMIN[0]!r}, password {ADMIN[1]!r})

Copy-paste this curl session into another terminal:

  CLIENT_ID={client_id}
  CLIENT_SECRET={secret}

  # 1. Log in as the demo user with the password grant (legacy, RFC 9700 §2.4:
  #    the app sees the password; new apps use the code flow below)
  PAIR=$(curl -s -u "$CLIENT_ID:$CLIENT_SECRET" -d grant_type=password \\
         -d username={DEMO_USER[0]} -d password={DEMO_USER[1]} {BASE_URL}/auth/token/)
  echo "$PAIR"
  ACCESS=$(printf '%s' "$PAIR" | {extract.format("access_token")})
  REFRESH=$(printf '%s' "$PAIR" | {extract.format("refresh_token")})

  # 2. Call the API with the access token
  curl -s -H "Authorization: Bearer $ACCESS" {BASE_URL}/api/whoami/; echo

  # 3. Refresh: a new pair; the old refresh token stays usable for 6 hours
  curl -s -u "$CLIENT_ID:$CLIENT_SECRET" -d grant_type=refresh_token \\
       --data-urlencode "refresh_token=$REFRESH" {BASE_URL}/auth/token/; echo

  # Client credentials (acts as the client's owner, {ADMIN[0]!r}):
  curl -s -u "$CLIENT_ID:$CLIENT_SECRET" -d grant_type=client_credentials \\
       {BASE_URL}/auth/token/; echo
"""
