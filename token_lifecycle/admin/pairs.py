"""The TokenPair admin: every pair with its status, read-only but for revoking.

Statuses are computed in the database (:func:`.status.with_status`), so a page
of pairs is labelled and filtered in one query, whatever its size.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from token_lifecycle import services
from token_lifecycle.models import TokenPair
from token_lifecycle.rules import RevokeReason

from .badges import STYLESHEET, pair_badge
from .formats import counted, table_instant
from .lookups import NoSecretLookups
from .permissions import has_model_permission
from .request_clock import request_now
from .status import PairStatus, status_q, with_status


class PairStatusFilter(admin.SimpleListFilter):
    """Filter pairs by :class:`~.status.PairStatus`, evaluated in the database."""

    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple]:
        return list(PairStatus.choices)

    def queryset(self, request: HttpRequest, queryset: QuerySet[TokenPair]) -> QuerySet[TokenPair]:
        if self.value() not in PairStatus.values:
            return queryset
        return queryset.filter(status_q(self.value(), request_now(request)))


@admin.register(TokenPair)
class TokenPairAdmin(NoSecretLookups):
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
        css = {"all": (STYLESHEET,)}

    def get_queryset(self, request: HttpRequest) -> QuerySet[TokenPair]:
        return with_status(super().get_queryset(request), request_now(request))

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[TokenPair], search_term: str
    ) -> tuple[QuerySet[TokenPair], bool]:
        """A pair id finds that pair by primary key; anything else searches the usual fields."""
        try:
            pair_id = TokenPair._meta.pk.to_python(search_term.strip())
        except Exception:  # ValidationError: not a UUID
            return super().get_search_results(request, queryset, search_term)
        return queryset.filter(pk=pair_id), False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # pairs are issued by the token endpoint only

    def has_change_permission(self, request: HttpRequest, obj: TokenPair | None = None) -> bool:
        return False  # read-only; revoking is the one change, see has_revoke_permission

    def has_delete_permission(self, request: HttpRequest, obj: TokenPair | None = None) -> bool:
        return False  # revoke instead; purge_expired_tokens deletes dead pairs

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return has_model_permission(request, "change", self.opts)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        # The template's "Revoke this pair" button shows only to those who may.
        extra_context = {
            **(extra_context or {}),
            "can_revoke": self.has_revoke_permission(request),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    # -- Columns

    @admin.display(description="status")
    def status_label(self, pair: TokenPair) -> SafeString:
        return pair_badge(pair.status, pair)

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
        # Pairs revoked already keep their reason: revoke_pair_by_id leaves them alone.
        for pair_id in queryset.values_list("pk", flat=True):
            revoked += len(services.revoke_pair_by_id(pair_id, RevokeReason.ADMIN))
        self.message_user(
            request,
            f"Revoked {counted(revoked, 'pair')}: "
            "their access and refresh tokens are refused from now on.",
            messages.SUCCESS,
        )
