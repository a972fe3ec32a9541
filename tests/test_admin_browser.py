"""The admin in a real browser (Debian's Chromium driven by Playwright).

One operator's path: log in, open a client and read its timeline, go to the
pairs, revoke one with the action, and see its access token refused by the
API. The run uses demo data with pairs in every state, and saves screenshots
of the two pages to ``test-artifacts/`` (and, with ``UPDATE_SCREENSHOTS=1``,
to ``docs/screenshots/`` for the README).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from chromium import chromium_context, save_screenshot
from conftest import PASSWORD
from test_admin import add_pair

from token_lifecycle import clock
from token_lifecycle.models import Client, TokenPair
from token_lifecycle.rules import RevokeReason

try:
    from playwright.sync_api import expect
except ImportError:  # the dev extra is not installed in this environment
    if os.environ.get("TOKEN_LIFECYCLE_REQUIRE_BROWSER") == "1":
        raise
    pytest.skip("needs the playwright package: pip install -e '.[dev]'", allow_module_level=True)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


@pytest.fixture
def page(live_server, monkeypatch):
    """A logged-out Chromium page."""
    options = {"viewport": {"width": 1440, "height": 900}, "base_url": live_server.url}
    with chromium_context(monkeypatch, **options) as context:
        yield context.new_page()


# -- Demo data ----------------------------------------------------------------


@dataclass
class Demo:
    mobile_app: Client
    #: Users with a current pair on the mobile app, newest first.
    current_users: tuple[str, ...]


def build_demo(make_user, now: datetime) -> Demo:
    """Four clients and their users, with pairs in every state an operator meets."""
    ops = make_user("ops", email="ops@example.com")
    alice, bob, carol, dave, erin = (
        make_user(name) for name in ("alice", "bob", "carol", "dave", "erin")
    )

    mobile = Client.objects.create(
        name="Mobile app", owner=ops, is_public=True, grant_types="password"
    )
    # Alice refreshed two hours ago: her old pair is in its grace window.
    first = add_pair(mobile, alice, now - 9 * DAY, rotated_at=now - 2 * HOUR)
    add_pair(mobile, alice, now - 2 * HOUR, parent=first)
    # Bob's app refreshes every few days: older pairs keep only their access token.
    first = add_pair(mobile, bob, now - 14 * DAY, rotated_at=now - 6 * DAY)
    second = add_pair(mobile, bob, now - 6 * DAY, rotated_at=now - DAY, parent=first)
    add_pair(mobile, bob, now - DAY, parent=second)
    # A stolen refresh token of Carol's was replayed: her family was revoked; she logged in again.
    first = add_pair(mobile, carol, now - 5 * DAY, rotated_at=now - 4 * DAY)
    add_pair(
        mobile,
        carol,
        now - 4 * DAY,
        parent=first,
        revoked_at=now - 3 * DAY,
        reason=RevokeReason.REUSE_DETECTED,
    )
    TokenPair.objects.filter(pk=first.pk).update(
        revoked_at=now - 3 * DAY, revoke_reason=RevokeReason.REUSE_DETECTED
    )
    add_pair(mobile, carol, now - 3 * DAY + HOUR)
    # Dave changed his password two days ago; his previous pair had expired the day before.
    first = add_pair(mobile, dave, now - 16 * DAY, rotated_at=now - 15 * DAY)
    add_pair(
        mobile,
        dave,
        now - 15 * DAY,
        parent=first,
        revoked_at=now - 2 * DAY,
        reason=RevokeReason.PASSWORD_CHANGE,
    )
    # Erin uses a phone and a tablet: two sessions, the newer one current.
    add_pair(mobile, erin, now - 3 * DAY)
    add_pair(mobile, erin, now - 20 * HOUR)

    partner_bot = make_user("partner-bot")
    partner = Client(name="Partner servers", owner=partner_bot, grant_types="client_credentials")
    partner.set_new_secret()
    partner.save()
    add_pair(partner, partner_bot, now - 9 * DAY, revoked_at=now - 2 * DAY)  # by an admin
    add_pair(partner, partner_bot, now - 2 * DAY)

    reporting = Client(
        name="Reporting dashboard",
        owner=ops,
        grant_types="password",
        access_token_lifetime=HOUR,
        refresh_token_lifetime=DAY,
        refresh_grace_period=10 * MINUTE,
        max_pairs_per_client=3,
    )
    reporting.set_new_secret()
    reporting.save()
    # A cap of 3 live pairs: each new login evicted the oldest.
    for issued, evicted in (
        (9 * HOUR, 170 * MINUTE),
        (7 * HOUR, 110 * MINUTE),
        (5 * HOUR, 50 * MINUTE),
    ):
        add_pair(
            reporting, alice, now - issued, revoked_at=now - evicted, reason=RevokeReason.EVICTED
        )
    for minutes in (170, 110, 50):
        add_pair(reporting, alice, now - minutes * MINUTE)

    legacy = Client(name="Legacy integration", owner=ops, grant_types="client_credentials")
    legacy.set_new_secret()
    legacy.save()
    add_pair(legacy, ops, now - 4 * DAY)
    legacy.is_active = False
    legacy.save()  # the receivers revoke its pairs: client_disabled

    return Demo(mobile_app=mobile, current_users=("alice", "erin", "bob", "carol"))


# -- The operator's path --------------------------------------------------------


def test_operator_revokes_a_pair_from_the_timeline_to_the_api(page, live_server, make_user):
    make_user("admin", is_staff=True, is_superuser=True)
    demo = build_demo(make_user, clock.now())
    make_user("frank")
    api = page.context.request

    # Frank logs in with the mobile app (a public client) and calls the API.
    token = api.post(
        "/auth/token/",
        form={
            "grant_type": "password",
            "client_id": demo.mobile_app.client_id,
            "username": "frank",
            "password": PASSWORD,
        },
    )
    assert token.status == 200, token.text()
    bearer = {"Authorization": f"Bearer {token.json()['access_token']}"}
    whoami = api.get("/api/whoami/", headers=bearer)
    assert whoami.status == 200
    pair_id = whoami.json()["pair_id"]

    # The operator logs in and opens the client.
    page.goto("/admin/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    expect(page.locator("#site-name")).to_be_visible()
    page.get_by_role("link", name="Clients").first.click()
    page.click("#toggle-nav-sidebar")  # more room for the tables (remembered by the browser)
    page.get_by_role("link", name="Mobile app").click()

    # The timeline: one row per pair, the current pair of each user marked.
    timeline = page.locator("#pair-timeline")
    expect(timeline).to_be_visible()
    rows = timeline.locator("tr.tl-row")
    expect(rows).to_have_count(13)  # 12 demo pairs of the mobile app and Frank's
    current = timeline.locator("tr.tl-row--current")
    expect(current).to_have_count(len(demo.current_users) + 1)
    expect(timeline.locator(f'tr[data-pair-id="{pair_id}"]')).to_have_class(
        re.compile(r"\btl-row--current\b")
    )
    expect(current.locator(".tl-col-user")).to_have_text(["frank", *demo.current_users])
    expect(timeline.locator("tr.tl-row--revoked")).to_have_count(3)
    expect(timeline.get_by_text("revoked: reuse detected")).to_have_count(2)
    box = timeline.bounding_box()
    save_screenshot(
        page,
        "client.png",
        clip={"x": 0, "y": 0, "width": 1440, "height": box["y"] + box["height"] + 24},
    )

    # The pairs: revoke Frank's with the action.
    page.get_by_role("link", name="All pairs of this client").click()
    page.locator(f'input[name="_selected_action"][value="{pair_id}"]').check()
    page.select_option("select[name=action]", "revoke_selected")
    page.click("button[name=index]")
    expect(page.locator("ul.messagelist")).to_contain_text("Revoked 1 pair")
    frank_row = page.locator("#result_list tbody tr").filter(has_text="frank")
    expect(frank_row.locator(".tl-status")).to_have_text("revoked: admin")

    # The API refuses Frank's access token from now on.
    assert api.get("/api/whoami/", headers=bearer).status == 401
    assert TokenPair.objects.get(pk=pair_id).revoke_reason == RevokeReason.ADMIN

    # The pairs of every client, for the README.
    page.goto("/admin/token_lifecycle/tokenpair/")
    expect(page.locator("#result_list")).to_be_visible()
    save_screenshot(page, "pairs.png", full_page=True)
