"""Signals of docs/commands-and-signals.md, each sent once per event after the transaction commits.

Receivers therefore never see a pair that a rollback later erased, and may
safely do slow work (send mail, call a webhook) without holding row locks.

- ``pair_issued(sender=TokenPair, pair, grant_type)``: a login or client-credentials grant.
- ``pair_refreshed(sender=TokenPair, pair, parent)``: ``pair`` was issued by refreshing ``parent``.
- ``pair_revoked(sender=TokenPair, pair_id, client_pk, user_pk, reason)``: once per revoked
  pair (``client_pk`` is the Client's primary key, not its public ``client_id``).
- ``refresh_token_reused(sender=TokenPair, pair, family_id, revoked_pair_ids)``: a
  refresh token was replayed after its grace window; with reuse detection on,
  ``revoked_pair_ids`` lists the family's pairs revoked because of it.
"""

from django.dispatch import Signal

pair_issued = Signal()
pair_refreshed = Signal()
pair_revoked = Signal()
refresh_token_reused = Signal()
