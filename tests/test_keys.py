"""Signing keys: created on first use, private half encrypted at rest."""

from __future__ import annotations

import base64

import jwt
import pytest

from token_lifecycle import keys
from token_lifecycle.models import SigningKey


def test_first_key_is_created_on_first_use(db):
    assert not SigningKey.objects.exists()
    key = keys.signing_key()
    row = SigningKey.objects.get()
    assert (row.kid, row.algorithm) == (key.kid, "RS256")
    assert key.private_key.key_size >= 2048
    # Cached: the second call neither queries nor creates.
    assert keys.signing_key() is key


def test_private_key_is_never_stored_in_clear(db):
    keys.signing_key()
    row = SigningKey.objects.get()
    stored = row.private_key_ciphertext
    assert stored.startswith("v1:")
    assert "PRIVATE KEY" not in stored
    raw = base64.urlsafe_b64decode(stored.split(":", 1)[1])
    plain = keys.decrypt_private_key(stored, row.kid)
    assert plain not in raw
    assert set(row.public_jwk) >= {"kty", "kid", "alg", "n", "e"}
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(row.public_jwk)


def test_changed_secret_fails_loudly(db, settings):
    keys.signing_key()
    row = SigningKey.objects.get()
    settings.SECRET_KEY = "a completely different secret key of decent length!!"
    with pytest.raises(keys.KeyDecryptionError, match="SECRET_KEY_FALLBACKS"):
        keys.decrypt_private_key(row.private_key_ciphertext, row.kid)


def test_previous_secret_in_fallbacks_still_decrypts(db, settings):
    old_secret = settings.SECRET_KEY
    keys.signing_key()
    row = SigningKey.objects.get()
    settings.SECRET_KEY = "the new secret key, rotated the Django way, long enough"
    settings.SECRET_KEY_FALLBACKS = [old_secret]
    assert keys.decrypt_private_key(row.private_key_ciphertext, row.kid)


def test_ciphertext_is_bound_to_its_kid(db):
    keys.signing_key()
    row = SigningKey.objects.get()
    with pytest.raises(keys.KeyDecryptionError):
        keys.decrypt_private_key(row.private_key_ciphertext, "another-kid")


@pytest.mark.parametrize("algorithm", ["RS256", "ES256", "EdDSA"])
def test_each_algorithm_signs_and_verifies(db, algorithm):
    row = keys.create_signing_key(algorithm)
    signer = keys.store.load(row, with_private=True)
    token = jwt.encode(
        {"sub": "1"}, signer.private_key, algorithm=algorithm, headers={"kid": row.kid}
    )
    verifier = keys.verification_key(row.kid)
    assert verifier.private_key is None
    assert jwt.decode(token, verifier.public_key, algorithms=[algorithm]) == {"sub": "1"}


def test_unknown_kid_is_remembered(db, django_assert_num_queries):
    with django_assert_num_queries(1):
        assert keys.verification_key("no-such-kid") is None
        assert keys.verification_key("no-such-kid") is None
