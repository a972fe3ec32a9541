"""The operator's real model permissions, for admins whose forms are read-only."""

from __future__ import annotations

from django.contrib.auth import get_permission_codename
from django.db.models.options import Options
from django.http import HttpRequest


def has_model_permission(request: HttpRequest, action: str, opts: Options) -> bool:
    """Whether the user holds ``action`` (add, change...) on the model of ``opts``.

    Pairs and signing keys are never edited through a form, so their admins
    deny "change" and "add"; yet revoking a pair or rotating keys is a change
    an operator must be allowed to make: ``change_tokenpair`` and
    ``add_signingkey`` say who may.
    """
    codename = get_permission_codename(action, opts)
    return request.user.has_perm(f"{opts.app_label}.{codename}")
