"""Rows as validation-cache values (token_lifecycle.cached_rows)."""

from __future__ import annotations

import pickle

import pytest
from django.contrib.auth import get_user_model

from token_lifecycle.cached_rows import RowCodec, codec_for
from token_lifecycle.models import Client


@pytest.fixture
def user_codec():
    return codec_for(get_user_model())


def test_a_user_comes_back_with_every_field_but_the_password(user, user_codec):
    stored = user_codec.encode(get_user_model().objects.get(pk=user.pk))

    copy = user_codec.decode(stored)

    assert type(copy) is get_user_model()
    for field in get_user_model()._meta.concrete_fields:
        if field.name != "password":
            assert getattr(copy, field.attname) == getattr(user, field.attname), field.name
    assert copy.get_deferred_fields() == {"password"}
    assert user.password.encode() not in stored


def test_the_password_is_loaded_when_read(user, user_codec, django_assert_num_queries):
    copy = user_codec.decode(user_codec.encode(user))
    with django_assert_num_queries(1):
        assert copy.check_password("correct horse battery staple")


def test_a_decoded_instance_is_an_ordinary_saved_row(user, user_codec):
    copy = user_codec.decode(user_codec.encode(user))
    assert copy._state.adding is False
    assert copy._state.db == "default"
    copy.first_name = "Alice"
    copy.save(update_fields=["first_name"])
    user.refresh_from_db()
    assert user.first_name == "Alice"


def test_each_read_builds_a_new_instance(oauth_client):
    client, _ = oauth_client
    codec = codec_for(Client)
    stored = codec.encode(client)

    first = codec.decode(stored)
    first.name = "changed by a view"
    second = codec.decode(stored)

    assert first is not second
    assert second.name == client.name


def test_mutable_values_are_copied_not_shared(oauth_client):
    """A JSONField's dict, say: a view changing it must not change what others read."""
    client, _ = oauth_client
    codec = RowCodec(Client)
    client.scope = ["read"]  # any mutable value stands for one
    stored = codec.encode(client)

    codec.decode(stored).scope.append("write")

    assert codec.decode(stored).scope == ["read"]


def test_values_of_another_layout_or_kind_are_refused(oauth_client, user):
    client, _ = oauth_client
    codec = codec_for(Client)
    user_row = codec_for(get_user_model()).encode(user)
    fewer_fields = RowCodec(Client, exclude=frozenset({"scope"})).encode(client)

    assert codec.decode(user_row) is None  # another model
    assert codec.decode(fewer_fields) is None  # the model as another version had it
    assert codec.decode(b"not a pickle") is None
    assert codec.decode(pickle.dumps(("a", "b"))) is None
    assert codec.decode(client) is None  # a pickled instance, as version 1 stored
    assert codec.decode(None) is None


def test_decoding_is_remembered_per_value(oauth_client, monkeypatch):
    client, _ = oauth_client
    codec = RowCodec(Client)
    stored = codec.encode(client)
    codec.decode(stored)

    loads = []
    monkeypatch.setattr(pickle, "loads", lambda *a: loads.append(a))
    assert codec.decode(bytes(stored)).client_id == client.client_id  # equal bytes, new object
    assert loads == []

    client.name = "renamed"
    monkeypatch.undo()
    assert codec.decode(codec.encode(client)).name == "renamed"  # new value, decoded anew
