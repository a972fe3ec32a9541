"""No URL lookup on a field that holds a secret in any form.

The changelist turns query-string parameters into queryset filters, so without
this a viewer could ask ``?client_secret_digest__startswith=ab`` and learn a
digest (or a ciphertext, or a user's password hash) a prefix at a time from
which rows come back. Django answers a refused lookup with 400
(``DisallowedModelAdminLookup``).
"""

from __future__ import annotations

from django.contrib import admin
from django.db.models.constants import LOOKUP_SEP
from django.http import HttpRequest

#: Fields never filtered on from a URL, on the model itself or across a relation.
SECRET_FIELDS = frozenset(
    {"client_secret_digest", "refresh_token_digest", "private_key_ciphertext", "password"}
)


def touches_secret(lookup: str) -> bool:
    """Whether any step of ``lookup`` (``owner__password__startswith``...) is a secret field."""
    return any(part in SECRET_FIELDS for part in lookup.split(LOOKUP_SEP))


class NoSecretLookups(admin.ModelAdmin):
    """A ModelAdmin refusing URL lookups that touch :data:`SECRET_FIELDS`."""

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        if touches_secret(lookup):
            return False
        return super().lookup_allowed(lookup, value, request)
