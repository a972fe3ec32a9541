"""The soak's world: users, clients (partners, apps, probes) and an old history to purge.

Created in the soak process before gunicorn starts, through the ORM and
``token_lifecycle.services`` (Django is set up on the private stack).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from datetime import timedelta

import soak_checks as checks
import soak_load as load

FLAVOURS = ("default", "default", "default", "default", "short", "default", "small-cap")
#: Per-client overrides of the "short" partners: expiry, grace end and reuse within the run.
SHORT_WINDOWS = {
    "access_token_lifetime": timedelta(seconds=8),
    "refresh_token_lifetime": timedelta(seconds=60),
    "refresh_grace_period": timedelta(seconds=3),
}
FIRST_PASSWORD = "soak-password-0"


@dataclasses.dataclass
class World:
    partners: list[load.Partner]
    apps: list[dict]
    sessions: list[tuple[dict, str]]
    passwords: load.Passwords
    changeable_users: dict[str, int]
    probes: dict[str, dict]
    probe_client_pk: int
    prepared: dict[str, list[load.Held]]
    probe_user: tuple[str, str]
    load_client_pks: list[int]
    policies: dict[int, checks.PolicyView]
    seeded_purgeable: set[str]
    seeded_kept: set[str]
    flavours: Counter


def make_client(
    name: str, owner, *, grants: str = "client_credentials", public: bool = False, **overrides
):
    from token_lifecycle.models import Client

    client = Client(name=name, owner=owner, grant_types=grants, is_public=public, **overrides)
    secret = None if public else client.set_new_secret()
    client.full_clean()
    client.save()
    auth = {"name": name, "client_id": client.client_id}
    if secret is not None:
        auth["secret"] = secret
    return client, auth


def create_world(clients: int, servers: int) -> World:
    from django.contrib.auth import get_user_model

    from token_lifecycle import keys

    user_model = get_user_model()
    keys.signing_key()  # the first signing key exists before the workers start

    def user(name: str):
        return user_model.objects.create_user(name, password=FIRST_PASSWORD)

    owners = [user(f"owner{i}") for i in range((clients + 1) // 2)]
    partners, flavours, load_pks = [], Counter(), []
    timing = load.Timing()
    for index in range(clients):
        flavour = FLAVOURS[index % len(FLAVOURS)]
        overrides = SHORT_WINDOWS if flavour == "short" else {}
        if flavour == "small-cap":
            overrides = {"max_pairs_per_client": 3}
        client, auth = make_client(
            f"partner-{index:02d}-{flavour}", owners[index // 2], **overrides
        )
        partners.append(load.Partner(auth["name"], auth, servers, timing))
        flavours[flavour] += 1
        load_pks.append(client.pk)

    app_owner = user("app-owner")
    app_users = [user(f"user{i}") for i in range(6)]
    public, public_auth = make_client("app-public", app_owner, grants="password", public=True)
    private, private_auth = make_client("app-confidential", app_owner, grants="password")
    load_pks += [public.pk, private.pk]
    apps = [public_auth, private_auth]
    sessions = [(apps[i % 2], u.username) for i, u in enumerate(app_users)]
    sessions += [(apps[1], app_users[0].username), (apps[0], app_users[3].username)]

    probe_owner = user("probe-owner")
    probes, probe_pks, prepared = {}, [], {}
    for name, count in (("kill", 10), ("postgres", 2), ("redis", 1)):
        client, probes[name] = make_client(f"probe-{name}", probe_owner)
        probe_pks.append(client.pk)
        prepared[name] = [issue_directly(client, probe_owner) for _ in range(count)]
    user("probe-user")
    changeable = {u.username: u.pk for u in [*owners, *app_users]}
    purgeable, kept = seed_history(user("archive-owner"))
    return World(
        partners=partners,
        apps=apps,
        sessions=sessions,
        passwords=load.Passwords({name: FIRST_PASSWORD for name in changeable}),
        changeable_users=changeable,
        probes=probes,
        probe_client_pk=probe_pks[0],
        prepared=prepared,
        probe_user=("probe-user", FIRST_PASSWORD),
        load_client_pks=load_pks,
        policies=policies(),
        seeded_purgeable=purgeable,
        seeded_kept=kept,
        flavours=flavours,
    )


def issue_directly(client, user) -> load.Held:
    """A client-credentials pair from ``services`` (what the token endpoint calls)."""
    from token_lifecycle import services
    from token_lifecycle.conf import lifecycle_settings

    issued = services.issue_pair(
        client=client,
        user=user,
        issuer=lifecycle_settings().issuer,
        grant_type="client_credentials",
    )
    return load.Held(str(issued.pair.pk), issued.access_token, issued.refresh_token)


def policies() -> dict[int, checks.PolicyView]:
    from token_lifecycle.models import Client

    result = {}
    for client in Client.objects.all():
        policy = client.policy()
        result[client.pk] = checks.PolicyView(
            policy.access_token_lifetime,
            policy.refresh_token_lifetime,
            policy.refresh_grace_period,
            policy.max_pairs,
        )
    return result


def seed_history(owner) -> tuple[set[str], set[str]]:
    """Old pairs for the purge: 300 dead for 60 days, one chain whose root is purgeable
    while its grandchild lives on, 50 dead for 2 days (kept by a 30-day retention)."""
    from token_lifecycle import clock, credentials, rules
    from token_lifecycle.models import TokenPair, uuid7

    client, _ = make_client("archive", owner)
    policy = client.policy()
    now = clock.now()
    grace = policy.refresh_grace_period

    def pair(issued_at, *, parent=None, rotated_at=None, revoked_at=None, reason=""):
        times = rules.new_pair_times(policy, issued_at, None)
        row = TokenPair(
            id=uuid7(),
            client=client,
            user=owner,
            parent=parent,
            refresh_token_digest=credentials.digest(credentials.new_refresh_token()),
            issued_at=issued_at,
            access_expires_at=times.access_expires_at,
            refresh_expires_at=times.refresh_expires_at,
            rotated_at=rotated_at,
            refresh_grace_ends_at=rotated_at + grace if rotated_at else None,
            revoked_at=revoked_at,
            revoke_reason=reason,
            live_until=times.live_until,
        )
        row.family_id = parent.family_id if parent else row.id
        row.live_until = rules.live_until(row)
        return row

    days = timedelta(days=1)
    dead = [pair(now - 65 * days, revoked_at=now - 60 * days, reason="logout") for _ in range(300)]
    root = pair(now - 65 * days, rotated_at=now - 40 * days)
    child = pair(now - 40 * days, parent=root, rotated_at=now - 12 * days)
    grandchild = pair(now - 12 * days, parent=child)
    hours = timedelta(hours=1)
    recent = [  # one after the other, as a well-behaved client's would be
        pair(
            now - 3 * days + i * hours,
            revoked_at=now - 3 * days + i * hours + hours / 2,
            reason="logout",
        )
        for i in range(50)
    ]
    TokenPair.objects.bulk_create([*dead, root, child, grandchild, *recent])
    purgeable = {str(row.id) for row in [*dead, root]}
    return purgeable, {str(row.id) for row in [child, grandchild, *recent]}
