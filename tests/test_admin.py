"""The Django admin: what an operator sees and can do, through Django's test client.

- Clients: live pair counts (one query for the page), lifecycle overrides
  with the setting in force, a secret shown exactly once after creation and
  after a rotation, actions revoking pairs (``admin``) or deactivating
  (``client_disabled``), and the timeline of the client's pairs.
- Pairs: a status per pair (current, superseded, access only, expired,
  revoked with its reason) that the status filter selects exactly, search,
  and the "revoke selected" action; read-only otherwise.
- Signing keys: status and the "rotate" action.
- No page ever shows a refresh token, a secret, a digest or a private key.

The status and timeline rules are also tested as pure functions
(``token_lifecycle.admin.status``, ``token_lifecycle.admin.timeline``).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from itertools import pairwise
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from freezegun import freeze_time

from token_lifecycle import clock, credentials, keys, rules, services
from token_lifecycle.admin.formats import format_duration
from token_lifecycle.admin.status import (
    KeyStatus,
    PairStatus,
    current_pair_ids,
    key_status,
    pair_status,
    status_q,
    with_status,
)
from token_lifecycle.admin.timeline import (
    MIN_BAR_WIDTH,
    ROW_LIMIT,
    BarKind,
    build_timeline,
    tick_step,
    validity_periods,
)
from token_lifecycle.models import Client, SigningKey, TokenPair
from token_lifecycle.rules import RevokeReason

T0 = datetime(2026, 3, 2, 9, 0, 0, tzinfo=timezone.utc)
SECOND = timedelta(seconds=1)
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
ISSUER = "http://testserver/auth"

CLIENTS_URL = "/admin/token_lifecycle/client/"
CLIENT_ADD_URL = "/admin/token_lifecycle/client/add/"
PAIRS_URL = "/admin/token_lifecycle/tokenpair/"
KEYS_URL = "/admin/token_lifecycle/signingkey/"

SELECTED = re.compile(r'name="_selected_action" value="([^"]+)"')
SECRET_ON_PAGE = re.compile(r'id="client-secret"[^>]*>([^<]+)<')
FORBIDDEN_FIELD_NAMES = ("refresh_token_digest", "client_secret_digest", "private_key_ciphertext")


# -- Helpers ------------------------------------------------------------------


def add_pair(
    client: Client,
    user,
    issued_at: datetime,
    *,
    rotated_at: datetime | None = None,
    revoked_at: datetime | None = None,
    reason: str = RevokeReason.ADMIN,
    parent: TokenPair | None = None,
) -> TokenPair:
    """A pair row with chosen instants, as the services would have stored it.

    Much faster than the token endpoint (no signing), for pages with many
    pairs and for demo data; the instants follow the client's policy.
    """
    policy = client.policy()
    times = rules.new_pair_times(policy, issued_at, None)
    pair = TokenPair(
        client=client,
        user=user,
        parent=parent,
        refresh_token_digest=credentials.digest(credentials.new_refresh_token()),
        issued_at=times.issued_at,
        access_expires_at=times.access_expires_at,
        refresh_expires_at=times.refresh_expires_at,
        live_until=times.live_until,
    )
    pair.family_id = parent.family_id if parent else pair.id
    if rotated_at is not None:
        pair.rotated_at = rotated_at
        pair.refresh_grace_ends_at = rotated_at + policy.refresh_grace_period
        pair.live_until = rules.live_until(pair)
    if revoked_at is not None:
        pair.revoked_at = revoked_at
        pair.revoke_reason = reason
    pair.save(force_insert=True)
    return pair


def selected_ids(response) -> set[str]:
    """The pair (or client) ids listed on a changelist page."""
    assert response.status_code == 200, response.content[:500]
    return set(SELECTED.findall(response.content.decode()))


def run_action(admin_client, url: str, action: str, objects, **extra):
    data = {"action": action, "index": 0, "_selected_action": [str(obj.pk) for obj in objects]}
    return admin_client.post(url, {**data, **extra})


def secret_on(response) -> str:
    assert response.status_code == 200, response.content[:500]
    found = SECRET_ON_PAGE.findall(response.content.decode())
    assert len(found) == 1, "the secret page shows the secret exactly once"
    return found[0]


def messages_of(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def client_credentials(token_request, client: Client, secret: str):
    return token_request({"grant_type": "client_credentials"}, auth=(client.client_id, secret))


def count_queries(fn) -> int:
    with CaptureQueriesContext(connection) as captured:
        fn()
    return len(captured)


@pytest.fixture
def issue():
    """Issue a pair through the services (signed, like a login); returns ``IssuedPair``."""

    def do(client: Client, user, **options):
        return services.issue_pair(
            client=client, user=user, issuer=ISSUER, grant_type="password", **options
        )

    return do


@pytest.fixture
def refresh():
    def do(client: Client, issued):
        return services.refresh_pair(
            client=client, refresh_token=issued.refresh_token, issuer=ISSUER
        )

    return do


@dataclass
class Scenario:
    """Pairs in every status at ``now``, issued and refreshed through the services."""

    now: datetime
    client: Client
    secret: str
    #: Each pair by name ("alice_first"...), with its tokens.
    issued: dict[str, services.IssuedPair] = field(default_factory=dict)
    expected: dict[str, PairStatus] = field(default_factory=dict)

    def pair_id(self, name: str) -> str:
        return str(self.issued[name].pair.pk)

    def ids(self, status: PairStatus) -> set[str]:
        return {self.pair_id(name) for name, value in self.expected.items() if value is status}

    def status_by_id(self) -> dict[str, PairStatus]:
        return {self.pair_id(name): value for name, value in self.expected.items()}


@pytest.fixture
def scenario(make_client, make_user, issue, refresh) -> Scenario:
    """Alice refreshed an hour ago (in grace), Bob long ago (access only), Carol logged
    out, Dave's pair expired, Erin has two sessions; Alice also uses another client."""
    client, secret = make_client("Mobile app")
    other, _ = make_client("Partner servers")
    alice, bob, carol, dave, erin = (
        make_user(name) for name in ("alice", "bob", "carol", "dave", "erin")
    )
    issued = {}
    with freeze_time(T0 - 40 * DAY) as frozen:
        issued["dave"] = issue(client, dave)
        frozen.move_to(T0)
        issued["alice_first"] = issue(client, alice)
        issued["bob_first"] = issue(client, bob)
        issued["carol"] = issue(client, carol)
        issued["erin_first"] = issue(client, erin)
        issued["alice_partner"] = issue(other, alice)
        frozen.move_to(T0 + HOUR)
        issued["bob_second"] = refresh(client, issued["bob_first"])
        frozen.move_to(T0 + 2 * HOUR)
        issued["erin_second"] = issue(client, erin)
        services.revoke_pair(issued["carol"].pair, RevokeReason.LOGOUT)
        frozen.move_to(T0 + DAY)
        issued["alice_second"] = refresh(client, issued["alice_first"])
    expected = {
        "alice_first": PairStatus.SUPERSEDED,  # inside its grace window
        "alice_second": PairStatus.CURRENT,
        "bob_first": PairStatus.ACCESS_ONLY,  # its grace window ended at T0 + 7 h
        "bob_second": PairStatus.CURRENT,
        "carol": PairStatus.REVOKED,
        "dave": PairStatus.EXPIRED,
        "erin_first": PairStatus.SUPERSEDED,  # never used, but a newer login exists
        "erin_second": PairStatus.CURRENT,
        "alice_partner": PairStatus.CURRENT,  # another client: another principal
    }
    return Scenario(
        now=T0 + DAY + HOUR, client=client, secret=secret, issued=issued, expected=expected
    )


# -- Pure rules: statuses -----------------------------------------------------


def state(**instants) -> SimpleNamespace:
    """A pair issued at T0 with the default lifetimes, changed by ``instants``."""
    values = {
        "pk": 1,
        "client_id": 1,
        "user_id": 1,
        "issued_at": T0,
        "access_expires_at": T0 + 15 * DAY,
        "refresh_expires_at": T0 + 30 * DAY,
        "rotated_at": None,
        "refresh_grace_ends_at": None,
        "revoked_at": None,
        "session_ends_at": None,
    }
    values.update(instants)
    return SimpleNamespace(**values)


class TestPairStatus:
    def test_a_live_pair_is_current_or_superseded_as_the_caller_says(self):
        pair = state()
        assert pair_status(pair, T0 + DAY, is_current=True) is PairStatus.CURRENT
        assert pair_status(pair, T0 + DAY, is_current=False) is PairStatus.SUPERSEDED

    def test_superseded_until_the_grace_end_then_access_only(self):
        pair = state(rotated_at=T0 + DAY, refresh_grace_ends_at=T0 + DAY + 6 * HOUR)
        grace_end = T0 + DAY + 6 * HOUR
        assert pair_status(pair, grace_end - SECOND, is_current=False) is PairStatus.SUPERSEDED
        assert pair_status(pair, grace_end, is_current=False) is PairStatus.ACCESS_ONLY

    def test_expired_at_exactly_the_last_expiry(self):
        pair = state(rotated_at=T0 + DAY, refresh_grace_ends_at=T0 + DAY + 6 * HOUR)
        access_end = T0 + 15 * DAY
        assert pair_status(pair, access_end - SECOND, is_current=False) is PairStatus.ACCESS_ONLY
        assert pair_status(pair, access_end, is_current=False) is PairStatus.EXPIRED
        assert pair_status(pair, access_end, is_current=True) is PairStatus.EXPIRED

    def test_a_never_used_pair_lives_until_its_refresh_expiry(self):
        pair = state()
        assert pair_status(pair, T0 + 30 * DAY - SECOND, is_current=True) is PairStatus.CURRENT
        assert pair_status(pair, T0 + 30 * DAY, is_current=True) is PairStatus.EXPIRED

    def test_revoked_wins_over_everything(self):
        pair = state(revoked_at=T0 + HOUR)
        assert pair_status(pair, T0 + 2 * HOUR, is_current=True) is PairStatus.REVOKED

    def test_current_pair_is_the_newest_live_one_of_each_principal(self):
        old = state(pk=1, issued_at=T0)
        new = state(pk=2, issued_at=T0 + HOUR)
        dead_newer = state(pk=3, issued_at=T0 + 2 * HOUR, revoked_at=T0 + 3 * HOUR)
        other_user = state(pk=4, user_id=2, issued_at=T0)
        same_second = state(pk=5, client_id=2, issued_at=T0)
        same_second_later_id = state(pk=6, client_id=2, issued_at=T0)
        pairs = [old, new, dead_newer, other_user, same_second, same_second_later_id]
        assert current_pair_ids(pairs, T0 + 4 * HOUR) == {2, 4, 6}


class TestKeyStatus:
    def test_pending_then_signing_then_verifying_then_retired(self):
        key = SimpleNamespace(
            signs_from=T0 + 15 * MINUTE,
            retired_at=T0 + 90 * DAY,
            verify_until=T0 + 106 * DAY,
        )
        assert key_status(key, T0) is KeyStatus.PENDING
        assert key_status(key, T0 + 15 * MINUTE) is KeyStatus.SIGNING
        assert key_status(key, T0 + 90 * DAY) is KeyStatus.VERIFYING
        assert key_status(key, T0 + 106 * DAY) is KeyStatus.RETIRED

    def test_a_key_signing_with_no_end_yet(self):
        key = SimpleNamespace(signs_from=T0, retired_at=None, verify_until=None)
        assert key_status(key, T0 + 365 * DAY) is KeyStatus.SIGNING

    def test_a_pending_key_overtaken_before_it_signs_only_verifies(self):
        key = SimpleNamespace(signs_from=T0 + HOUR, retired_at=T0, verify_until=T0 + DAY)
        assert key_status(key, T0 + MINUTE) is KeyStatus.VERIFYING


@pytest.mark.django_db
def test_the_database_classifies_every_pair_as_the_pure_rules_do(scenario):
    """``with_status`` and ``status_q`` (the changelist) agree with ``pair_status``."""
    now = scenario.now
    pairs = list(with_status(TokenPair.objects.all(), now))
    current = current_pair_ids(pairs, now)
    for pair in pairs:
        expected = scenario.status_by_id()[str(pair.pk)]
        assert pair_status(pair, now, is_current=pair.pk in current) is expected
        assert pair.status == expected
    for status in PairStatus:
        selected = TokenPair.objects.filter(status_q(status, now)).values_list("pk", flat=True)
        assert {str(pk) for pk in selected} == scenario.ids(status), status


# -- Pure rules: timeline geometry -------------------------------------------


class TestTimelineGeometry:
    def test_nothing_to_draw(self):
        assert build_timeline([], T0) is None

    def test_one_fresh_pair_spans_the_axis_with_margins(self):
        timeline = build_timeline([state()], T0 + DAY)
        # Axis: 30 days of refresh validity plus 2 % margins each side.
        assert timeline.start == T0 - 30 * DAY * 0.02
        assert timeline.end == T0 + 30 * DAY * 1.02
        (row,) = timeline.rows
        access, refresh = row.bars
        axis = 30 * 1.04
        assert (access.kind, refresh.kind) == (BarKind.ACCESS, BarKind.REFRESH)
        assert access.left == pytest.approx(0.6 / axis * 100)
        assert access.width == pytest.approx(15 / axis * 100)
        assert refresh.left == access.left
        assert refresh.width == pytest.approx(30 / axis * 100)
        assert timeline.now_left == pytest.approx(1.6 / axis * 100)
        assert row.revoked_left is None
        assert row.is_current and not row.ended

    def test_refresh_ends_at_first_use_and_grace_follows(self):
        used = T0 + 10 * DAY
        pair = state(rotated_at=used, refresh_grace_ends_at=used + 6 * HOUR)
        periods = {kind: (start, end) for kind, start, end in validity_periods(pair)}
        assert periods == {
            BarKind.ACCESS: (T0, T0 + 15 * DAY),
            BarKind.REFRESH: (T0, used),
            BarKind.GRACE: (used, used + 6 * HOUR),
        }
        row = build_timeline([pair], used + HOUR).rows[0]
        refresh, grace = row.bar(BarKind.REFRESH), row.bar(BarKind.GRACE)
        assert grace.left == pytest.approx(refresh.left + refresh.width)
        # 6 hours on a 15.6-day axis is 1.6 %: wide enough to draw as it is.
        assert grace.width == pytest.approx(6 / (15 * 1.04 * 24) * 100)

    def test_a_revocation_cuts_every_period(self):
        revoked = T0 + 2 * DAY
        pair = state(revoked_at=revoked, revoke_reason="evicted")
        periods = {kind: end for kind, _, end in validity_periods(pair)}
        assert periods == {BarKind.ACCESS: revoked, BarKind.REFRESH: revoked}
        timeline = build_timeline([pair], T0 + 3 * DAY)
        row = timeline.rows[0]
        assert row.status is PairStatus.REVOKED and row.ended
        assert row.revoked_left == pytest.approx(row.bars[0].left + row.bars[0].width)

    def test_tiny_periods_stay_visible_and_inside_the_axis(self):
        long_lived = state(pk=1, refresh_expires_at=T0 + 365 * DAY)
        blink = state(pk=2, user_id=2, rotated_at=T0, refresh_grace_ends_at=T0 + MINUTE)
        timeline = build_timeline([long_lived, blink], T0)
        (blink_row,) = [row for row in timeline.rows if row.pair is blink]
        grace = blink_row.bar(BarKind.GRACE)
        assert grace.width == MIN_BAR_WIDTH
        for row in timeline.rows:
            for bar in row.bars:
                assert bar.left >= 0 and bar.left + bar.width <= 100 + 1e-9

    def test_rows_grouped_by_principal_newest_first_with_the_current_pair_on_top(self):
        alice_old = state(pk=1, issued_at=T0)
        bob = state(pk=2, user_id=2, issued_at=T0 + HOUR)
        alice_new = state(pk=3, issued_at=T0 + 2 * HOUR)
        timeline = build_timeline([alice_old, bob, alice_new], T0 + 3 * HOUR)
        assert [row.pair.pk for row in timeline.rows] == [3, 1, 2]
        assert [row.status for row in timeline.rows] == [
            PairStatus.CURRENT,
            PairStatus.SUPERSEDED,
            PairStatus.CURRENT,
        ]
        assert [row.first_of_principal for row in timeline.rows] == [True, False, True]

    def test_now_after_every_pair_ended_is_still_on_the_axis(self):
        pair = state(revoked_at=T0 + HOUR)
        timeline = build_timeline([pair], T0 + 10 * DAY)
        assert timeline.end > T0 + 10 * DAY
        assert 90 < timeline.now_left < 100

    @pytest.mark.parametrize(
        ("span", "step"),
        [
            (3 * HOUR, HOUR),
            (DAY, 3 * HOUR),
            (2 * DAY, 6 * HOUR),
            (5 * DAY, DAY),
            (45 * DAY, 7 * DAY),
        ],
    )
    def test_tick_spacing_keeps_the_labels_few(self, span, step):
        assert tick_step(span) == step

    def test_ticks_fall_on_midnights_inside_the_axis(self):
        timeline = build_timeline([state()], T0 + DAY)
        assert timeline.ticks
        assert timeline.tick_format == "M j"
        for tick in timeline.ticks:
            assert timeline.start <= tick.at <= timeline.end
            assert (tick.at.hour, tick.at.minute) == (0, 0)
            assert 0 <= tick.left <= 100
        steps = {later.at - earlier.at for earlier, later in pairwise(timeline.ticks)}
        assert steps == {7 * DAY}

    def test_ticks_fall_on_the_operators_midnights(self):
        paris = ZoneInfo("Europe/Paris")
        timeline = build_timeline([state()], (T0 + DAY).astimezone(paris))
        assert timeline.ticks
        for tick in timeline.ticks:
            local = tick.at.astimezone(paris)
            assert (local.hour, local.minute) == (0, 0)

    def test_tick_labels_make_room_for_now(self):
        timeline = build_timeline([state(issued_at=T0 - 20 * DAY)], T0)  # a tick at 00:00 today
        near_now = [tick for tick in timeline.ticks if abs(tick.left - timeline.now_left) < 5]
        assert near_now and not any(tick.labelled for tick in near_now)
        assert any(tick.labelled for tick in timeline.ticks)


def test_durations_read_as_an_operator_says_them():
    assert format_duration(15 * DAY) == "15 days"
    assert format_duration(DAY + 6 * HOUR) == "1 day 6 hours"
    assert format_duration(90 * SECOND) == "1 minute 30 seconds"


# -- Clients ------------------------------------------------------------------


@pytest.mark.django_db
class TestClientChangelist:
    def test_live_pair_counts_and_overrides(self, admin_client, make_client, make_user):
        now = clock.now()
        busy, _ = make_client("Busy", access_token_lifetime=HOUR, max_pairs_per_client=3)
        quiet, _ = make_client("Quiet")
        alice = make_user("alice")
        for hours in (1, 2, 3):
            add_pair(busy, alice, now - hours * HOUR)
        add_pair(busy, alice, now - HOUR, revoked_at=now)  # revoked
        add_pair(busy, alice, now - 40 * DAY)  # expired
        page = admin_client.get(CLIENTS_URL).content.decode()
        assert re.search(r'<td class="field-live_pairs">3</td>', page)
        assert re.search(r'<td class="field-live_pairs">0</td>', page)
        assert "access 1 hour, max pairs 3" in page
        assert quiet.client_id in page and busy.owner.username in page

    def test_no_query_per_row(
        self, admin_client, make_client, make_user, django_assert_max_num_queries
    ):
        now = clock.now()
        alice = make_user("alice")
        client, _ = make_client("first")
        add_pair(client, alice, now)
        admin_client.get(CLIENTS_URL)  # warm up (content types, session)
        one_client = count_queries(lambda: admin_client.get(CLIENTS_URL))
        for number in range(15):
            more, _ = make_client(f"client {number}", owner=make_user(f"owner{number}"))
            add_pair(more, alice, now)
        with django_assert_max_num_queries(one_client):
            response = admin_client.get(CLIENTS_URL)
        assert len(selected_ids(response)) == 16

    def test_override_fields_show_the_setting_in_force(self, admin_client, settings):
        page = admin_client.get(CLIENT_ADD_URL).content.decode()
        assert "the setting ACCESS_TOKEN_LIFETIME applies, now 15 days" in page
        assert "the setting REFRESH_GRACE_PERIOD applies, now 6 hours" in page
        assert "the setting MAX_PAIRS_PER_CLIENT applies, now 10." in page
        settings.TOKEN_LIFECYCLE = {**settings.TOKEN_LIFECYCLE, "ACCESS_TOKEN_LIFETIME": HOUR}
        page = admin_client.get(CLIENT_ADD_URL).content.decode()
        assert "the setting ACCESS_TOKEN_LIFETIME applies, now 1 hour" in page

    def test_overrides_are_editable_and_empty_means_the_setting(self, admin_client, make_client):
        client, _ = make_client("Reporting")
        form = change_form_data(client, access_token_lifetime="1:00:00", max_pairs_per_client="3")
        response = admin_client.post(change_url(client), form)
        assert response.status_code == 302, response.content[:2000]
        client.refresh_from_db()
        assert client.access_token_lifetime == HOUR and client.max_pairs_per_client == 3
        assert client.policy().refresh_grace_period == 6 * HOUR
        response = admin_client.post(change_url(client), change_form_data(client))
        assert response.status_code == 302
        client.refresh_from_db()
        assert client.access_token_lifetime is None and client.policy().max_pairs == 10


def change_url(client: Client) -> str:
    return reverse("admin:token_lifecycle_client_change", args=[client.pk])


def change_form_data(client: Client, **changes) -> dict:
    data = {
        "name": client.name,
        "owner": client.owner_id,
        "is_active": "on" if client.is_active else "",
        "is_public": "on" if client.is_public else "",
        "grant_types": client.grant_types.split(),
        "scope": client.scope,
        "access_token_lifetime": "",
        "refresh_token_lifetime": "",
        "refresh_grace_period": "",
        "max_pairs_per_client": "",
        "_save": "Save",
    }
    data.update(changes)
    return {name: value for name, value in data.items() if value != ""}


def add_form_data(owner, **changes) -> dict:
    data = {
        "name": "Partner servers",
        "owner": owner.pk,
        "is_active": "on",
        "grant_types": ["client_credentials", "password"],
        "_save": "Save",
    }
    data.update(changes)
    return data


@pytest.mark.django_db
class TestClientSecretShownOnce:
    def test_created_client_shows_its_secret_once_and_it_works(
        self, admin_client, make_user, token_request, caplog
    ):
        owner = make_user("owner")
        caplog.set_level(logging.DEBUG)
        response = admin_client.post(CLIENT_ADD_URL, add_form_data(owner))
        secret = secret_on(response)
        client = Client.objects.get(name="Partner servers")
        assert secret.startswith(credentials.CLIENT_SECRET_PREFIX)
        assert client.check_secret(secret)
        assert client.grant_types == "client_credentials password"
        assert "no-store" in response["Cache-Control"]
        assert "Save this secret now" in response.content.decode()
        assert client.client_id in response.content.decode()
        # Nowhere else: not a message, a cookie, the session or a log line.
        assert not any(secret in message for message in messages_of(response))
        assert all(secret not in morsel.value for morsel in response.cookies.values())
        assert secret not in str(dict(admin_client.session))
        assert secret not in caplog.text
        # A confidential client created in the admin works with that secret.
        token = client_credentials(token_request, client, secret)
        assert token.status_code == 200, token.content
        assert_absent_everywhere(admin_client, secret, client)

    def test_a_public_client_gets_no_secret(self, admin_client, make_user):
        owner = make_user("owner")
        data = add_form_data(owner, name="Mobile app", is_public="on", grant_types=["password"])
        response = admin_client.post(CLIENT_ADD_URL, data)
        assert response.status_code == 302
        client = Client.objects.get(name="Mobile app")
        assert client.is_public and client.client_secret_digest == ""

    def test_a_public_client_cannot_have_client_credentials(self, admin_client, make_user):
        data = add_form_data(make_user("owner"), is_public="on")
        response = admin_client.post(CLIENT_ADD_URL, data)
        assert response.status_code == 200
        assert "cannot use the client_credentials grant" in response.content.decode()
        assert not Client.objects.exists()

    def test_rotate_secret_shows_the_new_one_once(
        self, admin_client, make_client, token_request, caplog
    ):
        client, old_secret = make_client()
        caplog.set_level(logging.DEBUG)
        response = run_action(admin_client, CLIENTS_URL, "rotate_secret", [client])
        secret = secret_on(response)
        assert secret != old_secret
        assert "the previous secret no longer works" in response.content.decode()
        assert "no-store" in response["Cache-Control"]
        assert not any(secret in message for message in messages_of(response))
        assert secret not in str(dict(admin_client.session))
        assert secret not in caplog.text
        assert client_credentials(token_request, client, secret).status_code == 200
        assert client_credentials(token_request, client, old_secret).status_code == 401
        assert_absent_everywhere(admin_client, secret, client)

    def test_rotate_secret_needs_exactly_one_confidential_client(self, admin_client, make_client):
        first, _ = make_client("first")
        second, _ = make_client("second")
        public, _ = make_client("app", public=True)
        digests = {c.pk: c.client_secret_digest for c in (first, second, public)}
        response = run_action(admin_client, CLIENTS_URL, "rotate_secret", [first, second])
        assert response.status_code == 302
        assert "Select exactly one client" in messages_of(response)[0]
        response = run_action(admin_client, CLIENTS_URL, "rotate_secret", [public])
        assert "public client: it has no secret" in messages_of(response)[-1]
        for client in Client.objects.all():
            assert client.client_secret_digest == digests[client.pk]


def assert_absent_everywhere(admin_client, secret: str, client: Client) -> None:
    for url in admin_pages(client):
        response = admin_client.get(url)
        assert response.status_code == 200, url
        assert secret not in response.content.decode(), url


def admin_pages(client: Client) -> list[str]:
    """Every admin page that could show something about ``client`` and its pairs."""
    pages = [
        "/admin/",
        CLIENTS_URL,
        change_url(client),
        reverse("admin:token_lifecycle_client_history", args=[client.pk]),
        PAIRS_URL,
        KEYS_URL,
        "/admin/token_lifecycle/",
    ]
    for pair in TokenPair.objects.filter(client=client):
        pages.append(reverse("admin:token_lifecycle_tokenpair_change", args=[pair.pk]))
    for key in SigningKey.objects.all():
        pages.append(reverse("admin:token_lifecycle_signingkey_change", args=[key.pk]))
    return pages


@pytest.mark.django_db
class TestClientActions:
    def test_revoke_all_pairs_revokes_live_pairs_with_reason_admin(
        self, admin_client, make_client, make_user, issue
    ):
        client, _ = make_client("target")
        other, _ = make_client("bystander")
        alice = make_user("alice")
        live = [issue(client, alice).pair, issue(client, make_user("bob")).pair]
        dead = issue(client, alice).pair
        services.revoke_pair(dead, RevokeReason.LOGOUT)
        untouched = issue(other, alice).pair
        response = run_action(admin_client, CLIENTS_URL, "revoke_all_pairs", [client])
        assert "Revoked 2 live pairs of 1 client." in messages_of(response)
        for pair in live:
            pair.refresh_from_db()
            assert pair.revoke_reason == RevokeReason.ADMIN
        dead.refresh_from_db()
        untouched.refresh_from_db()
        assert dead.revoke_reason == RevokeReason.LOGOUT
        assert untouched.revoked_at is None

    def test_deactivate_revokes_with_client_disabled(
        self, admin_client, make_client, make_user, issue, whoami
    ):
        client, _ = make_client("target")
        issued = issue(client, make_user("alice"))
        assert whoami(issued.access_token).status_code == 200
        response = run_action(admin_client, CLIENTS_URL, "deactivate", [client])
        assert any("Deactivated 1 client" in message for message in messages_of(response))
        assert any("1 live pair revoked" in message for message in messages_of(response))
        client.refresh_from_db()
        issued.pair.refresh_from_db()
        assert not client.is_active
        assert issued.pair.revoke_reason == RevokeReason.CLIENT_DISABLED
        assert whoami(issued.access_token).status_code == 401

    def test_actions_need_the_change_permission(self, client, make_client, make_user, issue):
        target, _ = make_client("target")
        issued = issue(target, make_user("alice"))
        viewer = make_user("viewer", is_staff=True)
        viewer.user_permissions.add(Permission.objects.get(codename="view_client"))
        client.force_login(viewer)
        page = client.get(CLIENTS_URL).content.decode()
        assert "revoke_all_pairs" not in page
        run_action(client, CLIENTS_URL, "revoke_all_pairs", [target])
        issued.pair.refresh_from_db()
        assert issued.pair.revoked_at is None


@pytest.mark.django_db
class TestClientTimeline:
    def test_rows_statuses_and_the_current_pair(self, admin_client, scenario):
        with freeze_time(scenario.now):
            response = admin_client.get(change_url(scenario.client))
        page = response.content.decode()
        assert 'id="pair-timeline"' in page
        rows = dict(re.findall(r'data-pair-id="([^"]+)" data-status="([^"]+)"', page))
        # Not Alice's pair of the other client, nor Dave's, dead for 10 days, beyond
        # the purge retention (7 days).
        shown = set(scenario.expected) - {"alice_partner", "dave"}
        assert rows == {scenario.pair_id(name): scenario.expected[name].value for name in shown}
        assert page.count("tl-row--current") == 3  # alice, bob, erin
        assert "revoked: logout" in page
        assert 'class="tl-bar tl-bar--grace"' in page
        assert 'class="tl-now"' in page

    def test_recently_expired_pairs_are_drawn_greyed(self, admin_client, make_client, make_user):
        client, _ = make_client()
        now = clock.now()
        expired = add_pair(client, make_user("alice"), now - 31 * DAY)  # ended a day ago
        page = admin_client.get(change_url(client)).content.decode()
        assert f'data-pair-id="{expired.pk}" data-status="expired"' in page
        assert "tl-row--ended" in page

    def test_rows_are_capped_and_the_page_says_so(
        self, admin_client, make_client, make_user, django_assert_max_num_queries
    ):
        client, _ = make_client()
        alice = make_user("alice")
        now = clock.now()
        add_pair(client, alice, now - 2 * DAY)
        admin_client.get(change_url(client))
        few = count_queries(lambda: admin_client.get(change_url(client)))
        TokenPair.objects.bulk_create(
            [
                TokenPair(
                    client=client,
                    user=alice,
                    family_id=client_pair_id,
                    refresh_token_digest=f"{number:064x}",
                    issued_at=now - number * MINUTE,
                    access_expires_at=now + DAY,
                    refresh_expires_at=now + 2 * DAY,
                    live_until=now + 2 * DAY,
                )
                for number, client_pair_id in enumerate(
                    TokenPair._meta.pk.default() for _ in range(ROW_LIMIT + 5)
                )
            ]
        )
        with django_assert_max_num_queries(few):
            page = admin_client.get(change_url(client)).content.decode()
        assert page.count("data-pair-id=") == ROW_LIMIT
        assert f"Only the {ROW_LIMIT} most recent pairs are drawn." in page
        assert page.count("tl-row--current") == 1

    def test_a_client_without_pairs(self, admin_client, make_client):
        client, _ = make_client()
        page = admin_client.get(change_url(client)).content.decode()
        assert "No live pairs, and none ended since" in page


# -- Token pairs --------------------------------------------------------------


@pytest.mark.django_db
class TestPairChangelist:
    @pytest.mark.parametrize("status", list(PairStatus))
    def test_status_filter_selects_exactly_the_pairs_in_that_status(
        self, admin_client, scenario, status
    ):
        with freeze_time(scenario.now):
            response = admin_client.get(PAIRS_URL, {"status": status.value})
        assert selected_ids(response) == scenario.ids(status)
        badges = re.findall(r'class="tl-status tl-status--([a-z_]+)"', response.content.decode())
        assert badges and set(badges) == {status.value}

    def test_labels_name_the_grace_window_and_the_revocation_reason(self, admin_client, scenario):
        with freeze_time(scenario.now):
            page = admin_client.get(PAIRS_URL).content.decode()
        assert len(selected_ids_from(page)) == len(scenario.expected)
        assert "superseded, in grace" in page
        assert "access only" in page
        assert "revoked: logout" in page

    def test_no_query_per_row(
        self, admin_client, make_client, make_user, django_assert_max_num_queries
    ):
        now = clock.now()
        client, _ = make_client()
        alice = make_user("alice")
        add_pair(client, alice, now)
        admin_client.get(PAIRS_URL)
        one_pair = count_queries(lambda: admin_client.get(PAIRS_URL))
        for number in range(10):
            user = make_user(f"user{number}")
            other, _ = make_client(f"client {number}", owner=user)
            first = add_pair(other, user, now - 2 * DAY, rotated_at=now - HOUR)
            add_pair(other, user, now - HOUR, parent=first)
            add_pair(client, user, now - 3 * DAY, revoked_at=now - DAY, reason="evicted")
        with django_assert_max_num_queries(one_pair):
            response = admin_client.get(PAIRS_URL)
        assert len(selected_ids(response)) == 31
        for status in PairStatus:
            with django_assert_max_num_queries(one_pair):
                admin_client.get(PAIRS_URL, {"status": status.value})

    def test_filters_by_client_and_reason_and_date(self, admin_client, scenario):
        carol_pair = scenario.ids(PairStatus.REVOKED)
        with freeze_time(scenario.now):
            by_reason = admin_client.get(PAIRS_URL, {"revoke_reason": "logout"})
            by_client = admin_client.get(PAIRS_URL, {"client__id__exact": scenario.client.pk})
            by_day = admin_client.get(
                PAIRS_URL,
                {"issued_at__year": 2026, "issued_at__month": 3, "issued_at__day": 2},
            )
        assert selected_ids(by_reason) == carol_pair
        assert len(selected_ids(by_client)) == len(scenario.expected) - 1
        # Issued on March 2 (T0): every pair but Alice's refresh (March 3) and Dave's.
        assert len(selected_ids(by_day)) == len(scenario.expected) - 2

    def test_search_by_pair_id_username_and_client_id(self, admin_client, scenario):
        pair_id = scenario.pair_id("carol")
        with freeze_time(scenario.now):
            by_id = admin_client.get(PAIRS_URL, {"q": pair_id})
            by_user = admin_client.get(PAIRS_URL, {"q": "erin"})
            by_client = admin_client.get(PAIRS_URL, {"q": scenario.client.client_id})
        assert selected_ids(by_id) == {pair_id}
        assert len(selected_ids(by_user)) == 2
        assert len(selected_ids(by_client)) == len(scenario.expected) - 1

    def test_revoke_selected_uses_reason_admin_and_tokens_stop_working(
        self, admin_client, scenario, whoami, token_request
    ):
        issued = scenario.issued["alice_second"]
        carol = scenario.issued["carol"].pair
        with freeze_time(scenario.now):
            assert whoami(issued.access_token).status_code == 200
            pairs = [issued.pair, carol]  # Carol's pair was revoked already: left as it is
            response = run_action(admin_client, PAIRS_URL, "revoke_selected", pairs)
            assert "Revoked 1 pair:" in messages_of(response)[0]
            assert whoami(issued.access_token).status_code == 401
            refreshed = token_request(
                {"grant_type": "refresh_token", "refresh_token": issued.refresh_token},
                auth=(scenario.client.client_id, scenario.secret),
            )
        assert refreshed.status_code == 400
        assert refreshed.json()["error"] == "invalid_grant"
        issued.pair.refresh_from_db()
        carol.refresh_from_db()
        assert issued.pair.revoke_reason == RevokeReason.ADMIN
        assert carol.revoke_reason == RevokeReason.LOGOUT

    def test_revoking_needs_the_change_permission(self, client, scenario, make_user):
        viewer = make_user("viewer", is_staff=True)
        viewer.user_permissions.add(Permission.objects.get(codename="view_tokenpair"))
        client.force_login(viewer)
        current = TokenPair.objects.filter(pk__in=scenario.ids(PairStatus.CURRENT))
        with freeze_time(scenario.now):
            page = client.get(PAIRS_URL).content.decode()
            assert "revoke_selected" not in page
            run_action(client, PAIRS_URL, "revoke_selected", current)
            detail = client.get(
                reverse("admin:token_lifecycle_tokenpair_change", args=[current[0].pk])
            )
        assert not TokenPair.objects.filter(revoked_at__isnull=False, pk__in=current).exists()
        assert "Revoke this pair" not in detail.content.decode()

    def test_read_only_no_add_no_edit_no_delete(self, admin_client, scenario):
        pair = TokenPair.objects.filter(pk__in=scenario.ids(PairStatus.CURRENT)).first()
        url = reverse("admin:token_lifecycle_tokenpair_change", args=[pair.pk])
        assert admin_client.get(PAIRS_URL + "add/").status_code == 403
        assert admin_client.post(url, {"scope": "admin"}).status_code == 403
        delete_url = reverse("admin:token_lifecycle_tokenpair_delete", args=[pair.pk])
        assert admin_client.post(delete_url, {"post": "yes"}).status_code == 403
        assert TokenPair.objects.filter(pk=pair.pk, revoked_at__isnull=True).exists()

    def test_detail_page_shows_status_family_and_a_revoke_button(self, admin_client, scenario):
        pair = scenario.issued["alice_first"].pair
        url = reverse("admin:token_lifecycle_tokenpair_change", args=[pair.pk])
        with freeze_time(scenario.now):
            page = admin_client.get(url).content.decode()
            assert "tl-status--superseded" in page
            assert f"?family_id={pair.family_id}" in page
            assert "Revoke this pair" in page
            family = admin_client.get(PAIRS_URL, {"family_id": pair.family_id})
            assert selected_ids(family) == {
                scenario.pair_id("alice_first"),
                scenario.pair_id("alice_second"),
            }
            # The button posts the changelist action for this one pair.
            form = re.search(r'<form method="post" action="([^"]+)" class="tl-inline-form">', page)
            response = admin_client.post(
                form.group(1),
                {"action": "revoke_selected", "index": 0, "_selected_action": str(pair.pk)},
            )
        assert response.status_code == 302
        pair.refresh_from_db()
        assert pair.revoke_reason == RevokeReason.ADMIN


def selected_ids_from(page: str) -> set[str]:
    return set(SELECTED.findall(page))


# -- Signing keys -------------------------------------------------------------


@pytest.mark.django_db
class TestSigningKeys:
    def test_rotate_says_when_the_new_key_starts_signing(self, admin_client):
        first = keys.create_signing_key("ES256")
        response = run_action(admin_client, KEYS_URL, "rotate", [first])
        (message,) = messages_of(response)
        new_key = SigningKey.objects.exclude(pk=first.pk).get()
        assert f"New RS256 key {new_key.kid} published" in message
        assert "starts signing at" in message and "(in 15 minutes)" in message
        assert f"The previous key {first.kid} keeps verifying until" in message
        page = admin_client.get(KEYS_URL).content.decode()
        assert "tl-key--pending" in page and "tl-key--signing" in page

    def test_rotate_needs_permission_and_keys_are_read_only(self, client, make_user):
        key = keys.create_signing_key("ES256")
        viewer = make_user("viewer", is_staff=True)
        viewer.user_permissions.add(Permission.objects.get(codename="view_signingkey"))
        client.force_login(viewer)
        run_action(client, KEYS_URL, "rotate", [key])
        assert SigningKey.objects.count() == 1
        assert client.get(KEYS_URL + "add/").status_code == 403
        delete_url = reverse("admin:token_lifecycle_signingkey_delete", args=[key.pk])
        assert client.post(delete_url, {"post": "yes"}).status_code == 403

    def test_no_query_per_row(self, admin_client, django_assert_max_num_queries):
        keys.create_signing_key("ES256")
        admin_client.get(KEYS_URL)
        one_key = count_queries(lambda: admin_client.get(KEYS_URL))
        for _ in range(5):
            keys.rotate("ES256")
        with django_assert_max_num_queries(one_key):
            response = admin_client.get(KEYS_URL)
        assert len(selected_ids(response)) == 6


# -- Nothing secret on any page ------------------------------------------------


@pytest.mark.django_db
def test_no_admin_page_shows_a_credential(admin_client, scenario):
    client = scenario.client
    secret_digest = client.client_secret_digest
    forbidden = [scenario.secret, secret_digest]
    for issued in scenario.issued.values():
        forbidden += [issued.refresh_token, issued.access_token, issued.pair.refresh_token_digest]
    key = SigningKey.objects.get()
    forbidden.append(key.private_key_ciphertext)
    forbidden.append(key.private_key_ciphertext.partition(":")[2][:40])
    with freeze_time(scenario.now):
        for url in admin_pages(client):
            page = admin_client.get(url).content.decode()
            for value in forbidden:
                assert value not in page, url
            for name in FORBIDDEN_FIELD_NAMES:
                assert name not in page, url
