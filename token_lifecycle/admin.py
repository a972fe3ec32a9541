"""The operator's view of clients, token pairs and signing keys.

Admins see every client's tokens at a glance (live pair counts, a timeline of
each client's pairs, a status for every pair) and act on them: rotate a
client's secret, revoke pairs, deactivate a client, rotate the signing key.
Every change goes through :mod:`.services` or :mod:`.keys`, so a revocation
from here is the same revocation as from the API (signals included).

Credentials never appear: a client secret is shown once, on the page that
answers its creation or rotation, and nowhere else (not in a message, the
session or a log); refresh tokens and secrets exist only as digests and
private keys only encrypted, and none of those fields is displayed.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_permission_codename
from django.db.models import Count, IntegerField, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.text import capfirst

from . import keys, services
from .conf import lifecycle_settings
from .models import CONFIGURABLE_GRANTS, Client, SigningKey, TokenPair
from .rules import RevokeReason
from .status import KeyStatus, PairStatus, key_status, status_q, with_status
from .timeline import ROW_LIMIT, build_timeline

ADMIN_CSS = "token_lifecycle/admin.css"

#: Per-client lifecycle overrides and the setting each one overrides.
LIFECYCLE_OVERRIDES = {
    "access_token_lifetime": "ACCESS_TOKEN_LIFETIME",
    "refresh_token_lifetime": "REFRESH_TOKEN_LIFETIME",
    "refresh_grace_period": "REFRESH_GRACE_PERIOD",
    "max_pairs_per_client": "MAX_PAIRS_PER_CLIENT",
}
_OVERRIDE_LABELS = {
    "access_token_lifetime": "access",
    "refresh_token_lifetime": "refresh",
    "refresh_grace_period": "grace",
    "max_pairs_per_client": "max pairs",
}


def request_now(request: HttpRequest) -> datetime:
    """One instant per request, so a page's labels, filters and counts agree."""
    if not hasattr(request, "_token_lifecycle_now"):
        request._token_lifecycle_now = services.clock()
    return request._token_lifecycle_now


def format_duration(value: timedelta) -> str:
    """``timedelta(days=1, hours=6)`` -> ``"1 day 6 hours"``: how an operator says it."""
    seconds = int(value.total_seconds())
    if seconds == 0:
        return "0 seconds"
    parts = []
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count} {unit}{'' if count == 1 else 's'}")
    return " ".join(parts)


def format_instant(value: datetime | None) -> str | None:
    """A local time to the minute, for messages and tooltips."""
    if value is None:
        return None
    return date_format(timezone.localtime(value), "Y-m-d H:i")


def table_instant(value: datetime | None) -> SafeString | None:
    """A compact local time for dense tables ("Nov 23, 14:05"), the full one on hover.

    The year shows only when it is not the current one.
    """
    if value is None:
        return None
    local = timezone.localtime(value)
    short = "M j, H:i" if local.year == timezone.localtime().year else "M j Y, H:i"
    return format_html(
        '<time datetime="{}" title="{}">{}</time>',
        local.isoformat(),
        date_format(local, "Y-m-d H:i:s T"),
        date_format(local, short),
    )


def has_model_permission(request: HttpRequest, action: str, opts) -> bool:
    """The user's real model permission, for admins whose forms are read-only.

    Pairs and signing keys are never edited through a form, yet revoking a
    pair or rotating keys is a change an operator must be allowed to make:
    the ``change_tokenpair`` and ``add_signingkey`` permissions say who may.
    """
    codename = get_permission_codename(action, opts)
    return request.user.has_perm(f"{opts.app_label}.{codename}")


def render_secret(
    model_admin: admin.ModelAdmin, request: HttpRequest, client: Client, secret: str, *, event: str
) -> HttpResponse:
    """The page showing a client secret, the only time it is ever shown.

    The secret lives in this response only: not in the messages framework, a
    cookie, the session or a log, and the response is not cached.
    """
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "title": f"Client secret of {client.name}",
        "client": client,
        "secret": secret,
        "event": event,
        "change_url": reverse("admin:token_lifecycle_client_change", args=[client.pk]),
        "add_url": reverse("admin:token_lifecycle_client_add"),
        "changelist_url": reverse("admin:token_lifecycle_client_changelist"),
    }
    response = TemplateResponse(request, "admin/token_lifecycle/client/secret.html", context)
    add_never_cache_headers(response)
    return response


# -- Status badges -------------------------------------------------------------


#: Badge texts shorter than the filter's labels, which the badge's tooltip gives.
_BADGE_TEXT = {PairStatus.SUPERSEDED: "superseded", PairStatus.ACCESS_ONLY: "access only"}


def status_badge(status: PairStatus | str, pair: TokenPair) -> SafeString:
    """A coloured label for a pair's status; revoked pairs name their reason."""
    status = PairStatus(status)
    text, title = _BADGE_TEXT.get(status, status.label), status.label
    if status is PairStatus.SUPERSEDED and pair.refresh_grace_ends_at is not None:
        text = "superseded, in grace"
        title = f"refresh token usable until {format_instant(pair.refresh_grace_ends_at)}"
    elif status is PairStatus.REVOKED:
        reason = pair.revoke_reason or "unknown"
        text = f"revoked: {reason.replace('_', ' ')}"
        label = RevokeReason(reason).label if reason in RevokeReason.values else reason
        title = f"{capfirst(label)}, {format_instant(pair.revoked_at)}"
    return format_html(
        '<span class="tl-status tl-status--{}" title="{}">{}</span>', status.value, title, text
    )


# -- Clients -------------------------------------------------------------------


class ClientAdminForm(forms.ModelForm):
    """The client form, with the space-separated grant types as checkboxes."""

    grant_types = forms.MultipleChoiceField(
        choices=[(grant.value, grant.label) for grant in CONFIGURABLE_GRANTS],
        widget=forms.CheckboxSelectMultiple,
        help_text="Refreshing is always allowed.",
    )

    class Meta:
        model = Client
        fields = (
            "name",
            "owner",
            "is_active",
            "is_public",
            "grant_types",
            "scope",
            "can_introspect",
            *LIFECYCLE_OVERRIDES,
        )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        initial = self.initial.get("grant_types")
        if isinstance(initial, str):
            self.initial["grant_types"] = initial.split()

    def clean_grant_types(self) -> str:
        chosen = set(self.cleaned_data["grant_types"])
        return " ".join(grant.value for grant in CONFIGURABLE_GRANTS if grant.value in chosen)


class LivePairCount(Subquery):
    """The number of live pairs of each client row, as one correlated subquery."""

    def __init__(self, now: datetime) -> None:
        counts = (
            TokenPair.objects.live(now)
            .filter(client=OuterRef("pk"))
            .order_by()
            .values("client")
            .annotate(count=Count("pk"))
            .values("count")
        )
        super().__init__(counts, output_field=IntegerField())


@admin.register(Client)
class ClientAdmin(admin.ModelAdmin):
    form = ClientAdminForm
    list_display = ("name", "client_id", "owner", "active", "live_pairs", "overrides")
    list_filter = ("is_active", "is_public")
    list_select_related = ("owner",)
    search_fields = ("name", "=client_id", "owner__username")
    readonly_fields = ("client_id", "created_at", "secret")
    raw_id_fields = ("owner",)
    actions = ("rotate_secret", "revoke_all_pairs", "deactivate")

    class Media:
        css = {"all": (ADMIN_CSS,)}

    def get_queryset(self, request: HttpRequest) -> QuerySet[Client]:
        live = Coalesce(LivePairCount(request_now(request)), Value(0))
        return super().get_queryset(request).annotate(live_pair_count=live)

    def get_fieldsets(self, request: HttpRequest, obj: Client | None = None):
        identity = ("name", "owner", "is_active")
        if obj is not None:
            identity = ("name", "client_id", "secret", "owner", "is_active", "created_at")
        return [
            (None, {"fields": identity}),
            (
                "Authentication",
                {"fields": ("is_public", "grant_types", "scope", "can_introspect")},
            ),
            (
                "Lifecycle overrides",
                {
                    "fields": tuple(LIFECYCLE_OVERRIDES),
                    "description": "Leave a field empty to use the project's setting, "
                    "shown under each field. Changes apply to pairs issued from now on.",
                },
            ),
        ]

    def formfield_for_dbfield(self, db_field, request: HttpRequest, **kwargs: Any):
        formfield = super().formfield_for_dbfield(db_field, request, **kwargs)
        if formfield is not None and db_field.name in LIFECYCLE_OVERRIDES:
            formfield.help_text = self._setting_in_force(db_field.name)
        return formfield

    @staticmethod
    def _setting_in_force(field_name: str) -> str:
        key = LIFECYCLE_OVERRIDES[field_name]
        value = getattr(lifecycle_settings(), field_name)
        if isinstance(value, timedelta):
            return (
                f"Empty: the setting {key} applies, now {format_duration(value)}. "
                "Format: days hh:mm:ss, e.g. “1 00:00:00” for one day, “6:00:00” for six hours."
            )
        return f"Empty: the setting {key} applies, now {value}."

    # -- Changelist columns

    @admin.display(description="active", boolean=True, ordering="is_active")
    def active(self, client: Client) -> bool:
        return client.is_active

    @admin.display(description="live pairs", ordering="live_pair_count")
    def live_pairs(self, client: Client) -> int:
        return client.live_pair_count

    @admin.display(description="lifecycle overrides")
    def overrides(self, client: Client) -> str | None:
        parts = []
        for field_name, label in _OVERRIDE_LABELS.items():
            value = getattr(client, field_name)
            if value is not None:
                shown = format_duration(value) if isinstance(value, timedelta) else value
                parts.append(f"{label} {shown}")
        return ", ".join(parts) or None

    @admin.display(description="client secret")
    def secret(self, client: Client) -> str:
        if client.is_public:
            return "None: a public client sends its client_id only."
        if not client.client_secret_digest:
            return "Not set yet: use the “Rotate secret” action on the client list."
        return "Set. It was shown once, when created or rotated; only its hash is stored."

    # -- Creating a client: the secret, shown once

    def save_model(self, request: HttpRequest, obj: Client, form, change: bool) -> None:
        if obj.is_public:
            obj.client_secret_digest = ""  # a public client has no secret
        elif not obj.client_secret_digest:
            # A new confidential client, or a public one made confidential.
            obj._new_secret = obj.set_new_secret()
        super().save_model(request, obj, form, change)

    def response_add(self, request: HttpRequest, obj: Client, post_url_continue=None):
        secret = obj.__dict__.pop("_new_secret", None)
        if secret is None:
            return super().response_add(request, obj, post_url_continue)
        return render_secret(self, request, obj, secret, event="created")

    def response_change(self, request: HttpRequest, obj: Client):
        secret = obj.__dict__.pop("_new_secret", None)
        if secret is None:
            return super().response_change(request, obj)
        return render_secret(self, request, obj, secret, event="made confidential")

    # -- The timeline on the change page

    def render_change_form(
        self, request, context, add=False, change=False, form_url="", obj=None
    ) -> HttpResponse:
        if obj is not None and obj.pk is not None:
            context.update(self.timeline_context(request, obj))
        return super().render_change_form(request, context, add, change, form_url, obj)

    def timeline_context(self, request: HttpRequest, client: Client) -> dict[str, Any]:
        """The client's live pairs and those ended recently, drawn on one axis.

        "Recently" is the purge retention (at least a day): the window in
        which ended pairs still exist anyway.
        """
        now = request_now(request)
        since = now - max(lifecycle_settings().purge_retention, timedelta(days=1))
        recent = (
            TokenPair.objects.filter(client=client)
            .filter(Q(revoked_at__isnull=True, live_until__gt=since) | Q(revoked_at__gt=since))
            .select_related("user")
            .order_by("-issued_at", "-id")
        )
        pairs = list(recent[: ROW_LIMIT + 1])
        timeline = build_timeline(pairs[:ROW_LIMIT], timezone.localtime(now))
        rows = (
            [(row, status_badge(row.status, row.pair)) for row in timeline.rows]
            if timeline
            else []
        )
        policy = client.policy()
        return {
            "policy_summary": {
                "access": format_duration(policy.access_token_lifetime),
                "refresh": format_duration(policy.refresh_token_lifetime),
                "grace": format_duration(policy.refresh_grace_period),
                "max_pairs": policy.max_pairs,
            },
            "timeline": timeline,
            "timeline_rows": rows,
            "timeline_truncated": len(pairs) > ROW_LIMIT,
            "timeline_limit": ROW_LIMIT,
            "timeline_since": since,
            "client_pairs_url": reverse("admin:token_lifecycle_tokenpair_changelist")
            + f"?client__id__exact={client.pk}",
        }

    # -- Actions

    @admin.action(
        description="Rotate secret of the selected client (shown once)", permissions=["change"]
    )
    def rotate_secret(self, request: HttpRequest, queryset: QuerySet[Client]):
        clients = list(queryset[:2])
        if len(clients) != 1:
            self.message_user(
                request, "Select exactly one client to rotate its secret.", messages.ERROR
            )
            return None
        client = clients[0]
        if client.is_public:
            self.message_user(
                request, f"{client.name} is a public client: it has no secret.", messages.ERROR
            )
            return None
        secret = services.rotate_client_secret(client)
        self.log_change(request, client, "Rotated the client secret.")
        return render_secret(self, request, client, secret, event="rotated")

    @admin.action(
        description="Revoke all live pairs of the selected clients", permissions=["change"]
    )
    def revoke_all_pairs(self, request: HttpRequest, queryset: QuerySet[Client]) -> None:
        clients = list(queryset)
        revoked = sum(
            len(services.revoke_client_pairs(client, RevokeReason.ADMIN)) for client in clients
        )
        self.message_user(
            request,
            f"Revoked {revoked} live pair{'' if revoked == 1 else 's'} "
            f"of {len(clients)} client{'' if len(clients) == 1 else 's'}.",
            messages.SUCCESS,
        )

    @admin.action(description="Deactivate the selected clients", permissions=["change"])
    def deactivate(self, request: HttpRequest, queryset: QuerySet[Client]) -> None:
        started = services.clock()
        clients = list(queryset.filter(is_active=True))
        for client in clients:
            client.is_active = False
            client.save(update_fields=["is_active"])  # receivers revoke: client_disabled
            self.log_change(request, client, "Deactivated.")
        revoked = TokenPair.objects.filter(
            client__in=clients,
            revoke_reason=RevokeReason.CLIENT_DISABLED,
            revoked_at__gte=started,
        ).count()
        self.message_user(
            request,
            f"Deactivated {len(clients)} client{'' if len(clients) == 1 else 's'}: "
            f"their tokens are refused from now on ({revoked} live "
            f"pair{'' if revoked == 1 else 's'} revoked).",
            messages.SUCCESS,
        )


# -- Token pairs ---------------------------------------------------------------


class PairStatusFilter(admin.SimpleListFilter):
    """Filter pairs by :class:`~.status.PairStatus`, evaluated in the database."""

    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin) -> list[tuple[str, str]]:
        return list(PairStatus.choices)

    def queryset(self, request: HttpRequest, queryset: QuerySet[TokenPair]):
        if self.value() not in PairStatus.values:
            return queryset
        return queryset.filter(status_q(self.value(), request_now(request)))


@admin.register(TokenPair)
class TokenPairAdmin(admin.ModelAdmin):
    list_display = (
        "status_label",
        "pair",
        "client_name",
        "user",
        "issued",
        "access_expiry",
        "refresh_expiry",
        "grace_end",
    )
    list_display_links = ("pair",)
    list_filter = (PairStatusFilter, "client", "revoke_reason")
    list_select_related = ("client", "user")
    search_fields = ("=client__client_id", "client__name", "user__username")
    search_help_text = "A client id or name, a username, or a pair id (the access token's jti)."
    date_hierarchy = "issued_at"
    ordering = ("-issued_at",)
    list_per_page = 50
    # Counting the whole table on every page is the slow part of a large changelist.
    show_full_result_count = False
    actions = ("revoke_selected",)
    fields = (
        "id",
        "status_label",
        "client",
        "user",
        "scope",
        "family",
        "parent_pair",
        "issued_at",
        "access_expires_at",
        "refresh_expires_at",
        "rotated_at",
        "refresh_grace_ends_at",
        "session_ends_at",
        "live_until",
        "revoked_at",
        "revoke_reason",
    )
    readonly_fields = fields

    class Media:
        css = {"all": (ADMIN_CSS,)}

    def get_queryset(self, request: HttpRequest) -> QuerySet[TokenPair]:
        return with_status(super().get_queryset(request), request_now(request))

    def get_search_results(self, request: HttpRequest, queryset, search_term: str):
        """A pair id finds that pair by primary key; anything else searches the usual fields."""
        try:
            pair_id = TokenPair._meta.pk.to_python(search_term.strip())
        except Exception:  # ValidationError: not a UUID
            return super().get_search_results(request, queryset, search_term)
        return queryset.filter(pk=pair_id), False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # pairs are issued by the token endpoint only

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # read-only; revoking is the one change, see has_revoke_permission

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # revoke instead; purge_expired_tokens deletes dead pairs

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return has_model_permission(request, "change", self.opts)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "can_revoke": self.has_revoke_permission(request),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    # -- Columns

    @admin.display(description="status")
    def status_label(self, pair: TokenPair) -> SafeString:
        return status_badge(pair.status, pair)

    @admin.display(description="pair", ordering="id")
    def pair(self, pair: TokenPair) -> SafeString:
        # The tail of the id: a UUIDv7 starts with its timestamp, shared by pairs of one minute.
        return format_html(
            '<code class="tl-pair-id" title="{}">…{}</code>', pair.pk, str(pair.pk)[-8:]
        )

    @admin.display(description="client", ordering="client__name")
    def client_name(self, pair: TokenPair) -> str:
        return pair.client.name

    @admin.display(description="issued", ordering="issued_at")
    def issued(self, pair: TokenPair) -> SafeString | None:
        return table_instant(pair.issued_at)

    @admin.display(description="access expiry", ordering="access_expires_at")
    def access_expiry(self, pair: TokenPair) -> SafeString | None:
        return table_instant(pair.access_expires_at)

    @admin.display(description="refresh expiry", ordering="refresh_expires_at")
    def refresh_expiry(self, pair: TokenPair) -> SafeString | None:
        return table_instant(pair.refresh_expires_at)

    @admin.display(description="grace end", ordering="refresh_grace_ends_at")
    def grace_end(self, pair: TokenPair) -> SafeString | None:
        return table_instant(pair.refresh_grace_ends_at)

    @admin.display(description="family")
    def family(self, pair: TokenPair) -> SafeString:
        url = reverse("admin:token_lifecycle_tokenpair_changelist")
        return format_html(
            '<a href="{}?family_id={}">{}</a> (every pair of this login and its refreshes)',
            url,
            pair.family_id,
            pair.family_id,
        )

    @admin.display(description="parent")
    def parent_pair(self, pair: TokenPair) -> SafeString | str:
        if pair.parent_id is None:
            return "None: the first pair of its family (a login)."
        # Linked by id, not loaded: the purge may have deleted the parent already.
        url = reverse("admin:token_lifecycle_tokenpair_change", args=[pair.parent_id])
        return format_html('<a href="{}">{}</a> (refreshed into this pair)', url, pair.parent_id)

    # -- Actions

    @admin.action(description="Revoke the selected pairs", permissions=["revoke"])
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet[TokenPair]) -> None:
        revoked = 0
        for pair_id in queryset.filter(revoked_at__isnull=True).values_list("pk", flat=True):
            revoked += len(services.revoke_pair_by_id(pair_id, RevokeReason.ADMIN))
        self.message_user(
            request,
            f"Revoked {revoked} pair{'' if revoked == 1 else 's'}: "
            "their access and refresh tokens are refused from now on.",
            messages.SUCCESS,
        )


# -- Signing keys --------------------------------------------------------------


@admin.register(SigningKey)
class SigningKeyAdmin(admin.ModelAdmin):
    list_display = (
        "kid",
        "algorithm",
        "created_at",
        "signs_from",
        "status_label",
        "verify_until",
    )
    fields = (
        "kid",
        "algorithm",
        "status_label",
        "created_at",
        "signs_from",
        "retired_at",
        "verify_until",
        "public_jwk",
    )
    readonly_fields = fields
    actions = ("rotate",)

    class Media:
        css = {"all": (ADMIN_CSS,)}

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # keys are generated by a rotation

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # tokens it signed would fail; retired keys leave the JWKS on their own

    def has_rotate_permission(self, request: HttpRequest) -> bool:
        return has_model_permission(request, "add", self.opts)

    @admin.display(description="status")
    def status_label(self, key: SigningKey) -> SafeString:
        status = key_status(key, timezone.now())
        return format_html(
            '<span class="tl-status tl-key--{}">{}</span>', status.value, status.label
        )

    @admin.action(description="Rotate: publish a new signing key", permissions=["rotate"])
    def rotate(self, request: HttpRequest, queryset: QuerySet[SigningKey]) -> None:
        new_key = keys.rotate()
        now = timezone.now()
        if key_status(new_key, now) is KeyStatus.SIGNING:
            when = "it signs new access tokens from now on"
        else:
            wait = format_duration(
                timedelta(minutes=round((new_key.signs_from - now) / timedelta(minutes=1)))
            )
            when = (
                f"it starts signing at {format_instant(new_key.signs_from)} (in {wait}), "
                "once every cached JWKS holds it"
            )
        previous = (
            SigningKey.objects.exclude(pk=new_key.pk)
            .filter(retired_at=new_key.signs_from)
            .order_by("-verify_until")
            .first()
        )
        until = ""
        if previous is not None and previous.verify_until is not None:
            until = (
                f" The previous key {previous.kid} keeps verifying until "
                f"{format_instant(previous.verify_until)}."
            )
        self.log_addition(request, new_key, "Rotated in.")
        self.message_user(
            request,
            f"New {new_key.algorithm} key {new_key.kid} published; {when}.{until}",
            messages.SUCCESS,
        )
