"""Revocation sources that are model changes (docs/lifecycle.md rule 4).

- A user's password change (``set_password`` then ``save``, as Django's
  password views and ``changepassword`` do) revokes every pair of that user:
  ``password_change``. Hash upgrades at login are not password changes.
- A user saved inactive revokes every pair of that user: ``user_disabled``.
- A client saved inactive revokes every pair of that client: ``client_disabled``.
  Its tokens are refused at once in any case, since authentication checks the
  client; the revocation makes the admin and the purge see them as dead.

Each is a setting (``REVOKE_ON_PASSWORD_CHANGE``, ``REVOKE_ON_USER_DEACTIVATION``,
``REVOKE_ON_CLIENT_DEACTIVATION``). The revocation runs inside the saving
transaction, so the change and the revocation commit together. Saving or
deleting a user or client also drops its entry from the validation cache
(:mod:`.cache`). Changes made with ``QuerySet.update()`` send no
signals: see the README for the bound on those.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models.signals import post_delete, post_save, pre_save

from . import cache, services
from .conf import lifecycle_settings
from .models import Client
from .rules import RevokeReason

_PENDING = "_token_lifecycle_revoke_reason"


def _deactivated(sender, instance, update_fields) -> bool:
    """Saved inactive while the stored row is active (one query, only for inactive saves)."""
    if instance.pk is None or getattr(instance, "is_active", True):
        return False
    if update_fields is not None and "is_active" not in update_fields:
        return False
    return sender._default_manager.filter(pk=instance.pk, is_active=True).exists()


def user_pre_save(sender, instance, update_fields=None, raw=False, **kwargs) -> None:
    if raw or instance.pk is None:
        return
    settings = lifecycle_settings()
    # set_password() leaves the raw password in _password until save(); a
    # hash upgrade at login clears it first (django.contrib.auth.base_user).
    if settings.revoke_on_password_change and getattr(instance, "_password", None) is not None:
        setattr(instance, _PENDING, RevokeReason.PASSWORD_CHANGE)
    elif settings.revoke_on_user_deactivation and _deactivated(sender, instance, update_fields):
        setattr(instance, _PENDING, RevokeReason.USER_DISABLED)


def user_post_save(sender, instance, created=False, raw=False, update_fields=None, **kw) -> None:
    reason = instance.__dict__.pop(_PENDING, None)
    if reason and not raw:
        services.revoke_user_pairs(instance, reason)
    if not created and update_fields != frozenset({"last_login"}):  # not on every login
        _forget_now_and_after_commit(cache.forget_user, instance.pk)


def client_pre_save(sender, instance, update_fields=None, raw=False, **kwargs) -> None:
    if raw or not lifecycle_settings().revoke_on_client_deactivation:
        return
    if _deactivated(sender, instance, update_fields):
        setattr(instance, _PENDING, RevokeReason.CLIENT_DISABLED)


def client_post_save(sender, instance, created=False, raw=False, **kwargs) -> None:
    reason = instance.__dict__.pop(_PENDING, None)
    if reason and not raw:
        services.revoke_client_pairs(instance, reason)
    if not created:
        _forget_now_and_after_commit(cache.forget_client, instance.client_id)


def user_post_delete(sender, instance, **kwargs) -> None:
    _forget_now_and_after_commit(cache.forget_user, instance.pk)


def client_post_delete(sender, instance, **kwargs) -> None:
    _forget_now_and_after_commit(cache.forget_client, instance.client_id)


def _forget_now_and_after_commit(forget, key) -> None:
    """Drop a cache entry now, and again once the change is visible to other requests.

    The second drop removes what a request may have cached from the database
    in between, when it still read the old row.
    """
    forget(key)
    transaction.on_commit(lambda: forget(key))


def connect() -> None:
    user_model = get_user_model()
    pre_save.connect(user_pre_save, sender=user_model, dispatch_uid="token_lifecycle.user_pre")
    post_save.connect(user_post_save, sender=user_model, dispatch_uid="token_lifecycle.user_post")
    pre_save.connect(client_pre_save, sender=Client, dispatch_uid="token_lifecycle.client_pre")
    post_save.connect(client_post_save, sender=Client, dispatch_uid="token_lifecycle.client_post")
    post_delete.connect(
        user_post_delete, sender=user_model, dispatch_uid="token_lifecycle.user_del"
    )
    post_delete.connect(
        client_post_delete, sender=Client, dispatch_uid="token_lifecycle.client_del"
    )
