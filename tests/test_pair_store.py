"""The prebuilt statements of issue and refresh (token_lifecycle.pair_store) against the ORM.

Each test compares ``pair_store`` with the ORM on the same rows, on whichever
database the suite runs (SQLite converts datetimes and UUIDs in Python,
PostgreSQL gets them typed from the driver).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection, router, transaction

from token_lifecycle import clock, credentials, locking, pair_store, services
from token_lifecycle.models import TokenPair

ISSUER = "https://api.example.test/auth"
pytestmark = pytest.mark.django_db


def issue(client, user):
    return services.issue_pair(client=client, user=user, issuer=ISSUER, grant_type="password")


def alias() -> str:
    return router.db_for_write(TokenPair)


def fields_of(pair: TokenPair) -> dict:
    return {field.attname: getattr(pair, field.attname) for field in TokenPair._meta.fields}


def test_the_pair_read_in_full_equals_the_orms(oauth_client, user):
    client, _ = oauth_client
    first, second, third = (issue(client, user) for _ in range(3))
    now = clock.now()
    found, others = pair_store.live_pairs_and_one(alias(), client.pk, user.pk, now, second.pair.pk)
    assert fields_of(found) == fields_of(TokenPair.objects.get(pk=second.pair.pk))
    assert not found._state.adding and found._state.db == alias()
    assert [pair.pk for pair in others] == [first.pair.pk, third.pair.pk]
    assert [pair.issued_at for pair in others] == [first.pair.issued_at, third.pair.issued_at]


def test_the_one_pair_is_read_even_when_it_is_not_live(oauth_client, user):
    client, _ = oauth_client
    issued = issue(client, user)
    services.revoke_pair(issued.pair, "logout")
    found, others = pair_store.live_pairs_and_one(
        alias(), client.pk, user.pk, clock.now(), issued.pair.pk
    )
    assert found.revoked_at is not None and others == []


def test_live_pairs_are_the_orms_live_pairs_in_issue_order(oauth_client, user, make_user):
    client, _ = oauth_client
    pairs = [issue(client, user).pair for _ in range(4)]
    issue(client, make_user("bob"))  # another principal
    services.revoke_pair(pairs[1], "logout")
    now = clock.now()
    expected = TokenPair.objects.live(now).filter(client=client, user=user)
    assert pair_store.live_pairs(alias(), client.pk, user.pk, now) == [
        (pair.pk, pair.issued_at) for pair in expected.order_by("issued_at", "id")
    ]
    # live_until is exclusive: a pair whose live_until is now is not live.
    last = TokenPair.objects.get(pk=pairs[3].pk)
    assert [
        row.pk for row in pair_store.live_pairs(alias(), client.pk, user.pk, last.live_until)
    ] == []
    before = last.live_until - timedelta(seconds=1)
    assert pairs[3].pk in [
        row.pk for row in pair_store.live_pairs(alias(), client.pk, user.pk, before)
    ]


def test_the_refresh_token_lookup(oauth_client, user):
    client, _ = oauth_client
    issued = issue(client, user)
    found = pair_store.find_by_refresh_digest(alias(), credentials.digest(issued.refresh_token))
    assert found == (issued.pair.pk, client.pk, user.pk, issued.pair.scope, True)
    user.is_active = False
    user.save()
    found = pair_store.find_by_refresh_digest(alias(), credentials.digest(issued.refresh_token))
    assert found.user_is_active is False
    assert pair_store.find_by_refresh_digest(alias(), credentials.digest("rt_unknown")) is None


def first_use(pair: TokenPair, now) -> TokenPair:
    """The parent's changes of a first refresh (values need not follow the rules here)."""
    pair.rotated_at = now
    pair.refresh_grace_ends_at = now + timedelta(hours=6)
    pair.live_until = pair.access_expires_at + timedelta(days=1)
    return pair


def test_a_rotation_is_stored_as_the_orm_would(oauth_client, user):
    client, _ = oauth_client
    pair = first_use(issue(client, user).pair, clock.now())
    pair_store.save_rotation(alias(), pair)
    assert fields_of(TokenPair.objects.get(pk=pair.pk)) == fields_of(pair)


def child_of(parent: TokenPair, now, name: str = "rt_child") -> TokenPair:
    return TokenPair(
        client_id=parent.client_id,
        user_id=parent.user_id,
        parent=parent,
        family_id=parent.family_id,
        refresh_token_digest=credentials.digest(name),
        issued_at=now,
        access_expires_at=now + timedelta(days=15),
        refresh_expires_at=now + timedelta(days=30),
        live_until=now + timedelta(days=30),
    )


def test_a_child_and_its_parents_first_use_are_stored_together(oauth_client, user):
    client, _ = oauth_client
    now = clock.now()
    parent = first_use(issue(client, user).pair, now)
    child = child_of(parent, now)
    assert pair_store.insert(alias(), child, rotated_parent=parent) == []
    assert fields_of(TokenPair.objects.get(pk=parent.pk)) == fields_of(parent)
    assert fields_of(TokenPair.objects.get(pk=child.pk)) == fields_of(child)
    assert not child._state.adding


def test_an_insert_evicts_and_reports_only_what_it_revoked(oauth_client, user):
    client, _ = oauth_client
    oldest, older, already_revoked, parent = (issue(client, user).pair for _ in range(4))
    services.revoke_pair(already_revoked, "logout")
    now = clock.now()
    child = child_of(first_use(parent, now), now)
    evicted = pair_store.insert(
        alias(),
        child,
        rotated_parent=parent,
        evict=[oldest.pk, older.pk, already_revoked.pk],
        revoked_at=now,
        reason="evicted",
    )
    assert sorted(evicted) == sorted((pair.pk, client.pk, user.pk) for pair in (oldest, older))
    rows = {pair.pk: pair for pair in TokenPair.objects.filter(client=client)}
    assert rows[oldest.pk].revoke_reason == rows[older.pk].revoke_reason == "evicted"
    assert rows[oldest.pk].revoked_at == now
    assert rows[already_revoked.pk].revoke_reason == "logout"
    assert fields_of(rows[parent.pk]) == fields_of(parent)
    assert fields_of(rows[child.pk]) == fields_of(child)


def test_a_parent_that_is_also_evicted_gets_both_changes(oauth_client, user):
    """The one case the combined statement cannot take (two changes to one row)."""
    client, _ = oauth_client
    parent = issue(client, user).pair
    now = clock.now()
    child = child_of(first_use(parent, now), now)
    evicted = pair_store.insert(
        alias(), child, rotated_parent=parent, evict=[parent.pk], revoked_at=now, reason="evicted"
    )
    assert evicted == [(parent.pk, client.pk, user.pk)]
    stored = TokenPair.objects.get(pk=parent.pk)
    assert (stored.rotated_at, stored.revoke_reason) == (now, "evicted")
    assert TokenPair.objects.filter(pk=child.pk).exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_lookup_takes_the_same_locks_as_lock_principal(oauth_client, user):
    """The lock names built in SQL from the row equal the ones services builds in Python."""
    client, _ = oauth_client
    issued = issue(client, user)
    names = [
        locking.user_lock_name(user.pk),
        locking.principal_lock_name(client.pk, user.pk),
    ]

    def held_keys() -> set[int]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT (classid::bigint << 32) | objid::bigint FROM pg_locks"
                " WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
            )
            return {row[0] for row in cursor.fetchall()}

    with connection.cursor() as cursor:
        cursor.execute("SELECT hashtextextended(%s, 0), hashtextextended(%s, 0)", names)
        expected = set(cursor.fetchone())
    assert pair_store.lookup_takes_locks(alias())
    with transaction.atomic():
        digest = credentials.digest(issued.refresh_token)
        assert pair_store.find_by_refresh_digest(alias(), digest, lock=True).user_pk == user.pk
        assert held_keys() == expected
    with transaction.atomic():
        locking.lock_principal(client.pk, user.pk)
        assert held_keys() == expected
