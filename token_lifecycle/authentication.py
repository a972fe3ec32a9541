"""The DRF authentication class named in the settings: ``token_lifecycle.authentication``.

The class lives in :mod:`token_lifecycle.bearer.authentication`; this module
keeps the dotted path projects put in ``DEFAULT_AUTHENTICATION_CLASSES``.
"""

from .bearer.authentication import AccessToken, BearerTokenAuthentication

__all__ = ["AccessToken", "BearerTokenAuthentication"]
