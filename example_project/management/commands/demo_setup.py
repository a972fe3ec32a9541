"""``manage.py demo_setup``: the demo admin, user and client, and a curl session to try.

Idempotent: run it again and it resets the demo passwords and gives the demo
client a new secret (the old one cannot be shown again: only its hash is kept).
"""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from token_lifecycle.models import Client

ADMIN = ("admin", "admin")
DEMO_USER = ("demo", "demo-password")
BASE_URL = "http://127.0.0.1:8000"


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
        self.stdout.write(self._instructions(client.client_id, secret))

    def _instructions(self, client_id: str, secret: str) -> str:
        extract = "python3 -c 'import json,sys; print(json.load(sys.stdin)[\"{}\"])'"
        return f"""
Demo ready.  Admin: {BASE_URL}/admin/  (user {ADMIN[0]!r}, password {ADMIN[1]!r})

Copy-paste this curl session into another terminal:

  CLIENT_ID={client_id}
  CLIENT_SECRET={secret}

  # 1. Log in as the demo user: get an access/refresh pair
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
