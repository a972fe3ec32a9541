"""Revocation sources that are model changes (docs/lifecycle.md rule 4).

- A change of a user's password hash revokes every pair of that user:
  ``password_change``. That is ``set_password`` then ``save`` (Django's
  password views, ``changepassword``), ``set_unusable_password`` then
  ``save`` (the admin's "Password-based authentication: Disabled"), and a
  hash assigned directly, just as any of them ends the user's Django
  sessions (``get_session_auth_hash``). Django's hash upgrade at login
  (``check_password`` rehashing the same password) is not a change.
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

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import is_password_usable
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
    if not _may_write(update_fields, "is_active"):
        return False
    return sender._base_manager.filter(pk=instance.pk, is_active=True).exists()


def _may_write(update_fields: frozenset[str] | None, field: str) -> bool:
    return update_fields is None or field in update_fields


def _rehash_at_login(instance: Any, update_fields: frozenset[str] | None) -> bool:
    """The save of ``AbstractBaseUser.check_password`` upgrading the hash of the same password.

    Its setter calls ``set_password`` then sets ``_password`` back to None (Django's
    marker: "hash upgrades shouldn't be considered password changes") and saves
    the password alone. ``_password`` set on the instance but None, with no
    other field saved, is that save; an unusable hash never is.
    """
    return (
        update_fields == frozenset({"password"})
        and "_password" in instance.__dict__
        and instance._password is None
        and is_password_usable(instance.password)
    )


def _revoke_reason(
    sender: type, instance: Any, update_fields: frozenset[str] | None, using: str | None
) -> RevokeReason | None:
    """Why saving ``instance`` revokes the user's pairs, if it does.

    No query when the answer is known without one: ``set_password`` leaves the
    raw password in ``_password`` until ``save()``; a save that writes neither
    the password nor ``is_active`` (``last_login`` at every login) cannot change
    them. Otherwise one query reads the stored hash (and ``is_active``).
    """
    settings = lifecycle_settings()
    password = settings.revoke_on_password_change and _may_write(update_fields, "password")
    if password and getattr(instance, "_password", None) is not None:
        return RevokeReason.PASSWORD_CHANGE
    if password and _rehash_at_login(instance, update_fields):
        password = False
    deactivation = (
        settings.revoke_on_user_deactivation
        and not getattr(instance, "is_active", True)
        and _may_write(update_fields, "is_active")
    )
    fields = [
        name for name, wanted in (("password", password), ("is_active", deactivation)) if wanted
    ]
    if not fields:
        return None
    stored = sender._base_manager.using(using).filter(pk=instance.pk).values(*fields).first()
    if stored is None:
        return None
    if password and stored["password"] != instance.password:
        return RevokeReason.PASSWORD_CHANGE
    if deactivation and stored["is_active"]:
        return RevokeReason.USER_DISABLED
    return None


def user_pre_save(
    sender: type,
    instance: Any,
    update_fields: frozenset[str] | None = None,
    raw: bool = False,
    using: str | None = None,
    **kwargs: Any,
) -> None:
    if raw or instance.pk is None:
        return
    reason = _revoke_reason(sender, instance, update_fields, using)
    if reason is not None:
        setattr(instance, _PENDING, reason)


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
