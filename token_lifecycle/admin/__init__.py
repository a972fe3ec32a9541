"""The operator's view of clients, token pairs and signing keys.

Admins see every client's tokens at a glance (live pair counts, a timeline of
each client's pairs, a status for every pair) and act on them: rotate a
client's secret, revoke pairs, deactivate a client, rotate the signing key.
Every change goes through :mod:`token_lifecycle.services` or
:mod:`token_lifecycle.keys`, so a revocation from here is the same revocation
as from the API (signals included).

Credentials never appear: a client secret is shown once, on the page that
answers its creation or rotation, and nowhere else; refresh tokens and
secrets exist only as digests and private keys only encrypted, and none of
those fields is displayed.

Django's autodiscovery imports this package; importing the modules below
runs their ``@admin.register``.
"""

from . import clients, keys, pairs

__all__ = ["clients", "keys", "pairs"]
