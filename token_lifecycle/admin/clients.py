"""The Client admin: lifecycle overrides, live pair counts, the timeline, the secret.

A client secret is shown once, on the page that answers the client's creation
or a secret rotation (:func:`render_secret`), and nowhere else: not in a
message, the session or a log. Only its digest is stored, and never shown.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, Field, IntegerField, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.views.decorators.debug import sensitive_variables

from token_lifecycle import clock, services
from token_lifecycle.conf import lifecycle_settings
from token_lifecycle.models import CONFIGURABLE_GRANTS, Client, TokenPair
from token_lifecycle.rules import RevokeReason

from .badges import STYLESHEET, pair_badge
from .formats import counted, format_duration
from .lookups import NoSecretLookups
from .permissions import has_model_permission
from .request_clock import request_now
from .timeline import ROW_LIMIT, build_timeline, recent_pairs

#: Per-client lifecycle overrides and the setting each one overrides.
LIFECYCLE_OVERRIDES = {
    "access_token_lifetime": "ACCESS_TOKEN_LIFETIME",
    "refresh_token_lifetime": "REFRESH_TOKEN_LIFETIME",
    "refresh_grace_period": "REFRESH_GRACE_PERIOD",
    "max_pairs_per_client": "MAX_PAIRS_PER_CLIENT",
}
#: How the changelist names each override.
_OVERRIDE_LABELS = {
    "access_token_lifetime": "access",
    "refresh_token_lifetime": "refresh",
    "refresh_grace_period": "grace",
    "max_pairs_per_client": "max pairs",
}


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
            "client_credentials_refresh",
            "redirect_uris",
            "skip_consent",
            "refresh_token_in_cookie",
            "allowed_origins",
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


class ShownOnce:
    """A secret for the template: ``str()`` gives it, ``repr()`` never does.

    The template renders after the view has returned, outside any
    ``sensitive_variables`` frame; if rendering fails, the error report shows
    the context's repr.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def __str__(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "<client secret, hidden>"


@sensitive_variables("secret", "context")
def render_secret(
    model_admin: admin.ModelAdmin, request: HttpRequest, client: Client, secret: str, *, event: str
) -> HttpResponse:
    """The page showing a client secret, the only time it is ever shown.

    The secret lives in this response only: not in the messages framework, a
    cookie, the session, a log or an error report, and the response is not cached.
    """
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "title": f"Client secret of {client.name}",
        "client": client,
        "secret": ShownOnce(secret),
        "event": event,
        "change_url": reverse("admin:token_lifecycle_client_change", args=[client.pk]),
        "add_url": reverse("admin:token_lifecycle_client_add"),
        "changelist_url": reverse("admin:token_lifecycle_client_changelist"),
    }
    response = TemplateResponse(request, "admin/token_lifecycle/client/secret.html", context)
    add_never_cache_headers(response)
    return response


@admin.register(Client)
class ClientAdmin(NoSecretLookups):
    form = ClientAdminForm
    list_display = ("name", "client_id", "owner", "active", "live_pairs", "overrides")
    list_filter = ("is_active", "is_public")
    list_select_related = ("owner",)
    search_fields = ("name", "=client_id", "owner__username")
    readonly_fields = ("client_id", "created_at", "secret")
    raw_id_fields = ("owner",)
    actions = ("rotate_secret", "revoke_all_pairs", "deactivate")

    class Media:
        css = {"all": (STYLESHEET,)}

    def get_queryset(self, request: HttpRequest) -> QuerySet[Client]:
        live = Coalesce(LivePairCount(request_now(request)), Value(0))
        return super().get_queryset(request).annotate(live_pair_count=live)

    def get_fieldsets(self, request: HttpRequest, obj: Client | None = None) -> list:
        identity = ("name", "owner", "is_active")
        if obj is not None:
            identity = ("name", "client_id", "secret", "owner", "is_active", "created_at")
        return [
            (None, {"fields": identity}),
            (
                "Authentication",
                {
                    "fields": (
                        "is_public",
                        "grant_types",
                        "client_credentials_refresh",
                        "scope",
                        "can_introspect",
                    )
                },
            ),
            (
                "Logging people in (authorization code flow)",
                {"fields": ("redirect_uris", "skip_consent")},
            ),
            (
                "Browser mode",
                {"fields": ("refresh_token_in_cookie", "allowed_origins")},
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

    def formfield_for_dbfield(
        self, db_field: Field, request: HttpRequest, **kwargs: Any
    ) -> forms.Field | None:
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

    def save_model(
        self, request: HttpRequest, obj: Client, form: forms.Form, change: bool
    ) -> None:
        if obj.is_public:
            obj.client_secret_digest = ""  # a public client has no secret
        elif not obj.client_secret_digest:
            # A new confidential client, or a public one made confidential.
            obj._new_secret = obj.set_new_secret()
        super().save_model(request, obj, form, change)

    @sensitive_variables("secret")
    def response_add(
        self, request: HttpRequest, obj: Client, post_url_continue: str | None = None
    ) -> HttpResponse:
        secret = obj.__dict__.pop("_new_secret", None)
        if secret is None:
            return super().response_add(request, obj, post_url_continue)
        return render_secret(self, request, obj, secret, event="created")

    @sensitive_variables("secret")
    def response_change(self, request: HttpRequest, obj: Client) -> HttpResponse:
        secret = obj.__dict__.pop("_new_secret", None)
        if secret is None:
            return super().response_change(request, obj)
        return render_secret(self, request, obj, secret, event="made confidential")

    # -- The timeline on the change page

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Client | None = None,
    ) -> HttpResponse:
        if obj is not None and obj.pk is not None:
            context.update(self.timeline_context(request, obj))
        return super().render_change_form(request, context, add, change, form_url, obj)

    def timeline_context(self, request: HttpRequest, client: Client) -> dict[str, Any]:
        """The client's recent pairs drawn on one axis, and the policy they follow."""
        now = request_now(request)
        recent = recent_pairs(client, now)
        timeline = build_timeline(recent.pairs, timezone.localtime(now))
        rows = (
            [(row, pair_badge(row.status, row.pair)) for row in timeline.rows] if timeline else []
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
            "timeline_truncated": recent.truncated,
            "timeline_limit": ROW_LIMIT,
            "timeline_since": recent.since,
            "client_pairs_url": reverse("admin:token_lifecycle_tokenpair_changelist")
            + f"?client__id__exact={client.pk}",
        }

    # -- Actions

    @admin.action(
        description="Rotate secret of the selected client (shown once)", permissions=["change"]
    )
    @sensitive_variables("secret")
    def rotate_secret(
        self, request: HttpRequest, queryset: QuerySet[Client]
    ) -> HttpResponse | None:
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

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        # Revoking pairs needs the same permission on every page: change_tokenpair.
        return has_model_permission(request, "change", TokenPair._meta)

    @admin.action(
        description="Revoke all live pairs of the selected clients", permissions=["revoke"]
    )
    def revoke_all_pairs(self, request: HttpRequest, queryset: QuerySet[Client]) -> None:
        clients = list(queryset)
        revoked = sum(
            len(services.revoke_client_pairs(client, RevokeReason.ADMIN)) for client in clients
        )
        self.message_user(
            request,
            f"Revoked {counted(revoked, 'live pair')} of {counted(len(clients), 'client')}.",
            messages.SUCCESS,
        )

    @admin.action(description="Deactivate the selected clients", permissions=["change"])
    def deactivate(self, request: HttpRequest, queryset: QuerySet[Client]) -> None:
        started = clock.now()
        clients = list(queryset.filter(is_active=True))
        for client in clients:
            client.is_active = False
            client.save(update_fields=["is_active"])  # receivers revoke: client_disabled
            self.log_change(request, client, "Deactivated.")
        # The receivers revoked them; count what they did rather than repeat it.
        revoked = TokenPair.objects.filter(
            client__in=clients,
            revoke_reason=RevokeReason.CLIENT_DISABLED,
            revoked_at__gte=started,
        ).count()
        self.message_user(
            request,
            f"Deactivated {counted(len(clients), 'client')}: their tokens are refused "
            f"from now on ({counted(revoked, 'live pair')} revoked).",
            messages.SUCCESS,
        )
