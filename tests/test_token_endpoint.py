"""HTTP contract of ``POST /auth/token/`` (RFC 6749 §2.3, §4.3, §4.4, §5, §6; docs/http-api.md).

Every grant succeeds with the exact §5.1 shape; every refusal has the §5.2
shape, the right status, ``no-store`` caching headers, and never echoes the
credential that was submitted.
"""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from urllib.parse import urlencode

import jwt
import pytest
from conftest import FORM, PASSWORD, basic_auth

from token_lifecycle.models import Client, TokenPair

TOKEN_URL = "/auth/token/"
DAY = 24 * 3600
DEFAULT_ACCESS_SECONDS = 15 * DAY
DEFAULT_REFRESH_SECONDS = 30 * DAY

STYLES = pytest.mark.parametrize("style", ["basic", "body"])
ENCODINGS = pytest.mark.parametrize("encoding", ["form", "json"])


# -- Helpers ------------------------------------------------------------------


def assert_no_store(response) -> None:
    assert response["Cache-Control"] == "no-store"
    assert response["Pragma"] == "no-cache"


def assert_token_response(
    response, *, access_seconds=DEFAULT_ACCESS_SECONDS, refresh_seconds=DEFAULT_REFRESH_SECONDS
) -> dict:
    """The RFC 6749 §5.1 success shape, with lifetimes equal to the configured ones."""
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("application/json")
    assert_no_store(response)
    body = response.json()
    expected_keys = {
        "access_token",
        "token_type",
        "expires_in",
        "refresh_token",
        "refresh_expires_in",
    }
    assert set(body) - {"scope"} == expected_keys
    assert body["token_type"] == "Bearer"
    assert type(body["expires_in"]) is int
    assert type(body["refresh_expires_in"]) is int
    assert body["expires_in"] == access_seconds
    assert body["refresh_expires_in"] == refresh_seconds
    assert isinstance(body["access_token"], str)
    assert isinstance(body["refresh_token"], str)
    assert body["access_token"] != body["refresh_token"]
    return body


def claims_of(access_token: str) -> dict:
    return jwt.decode(access_token, options={"verify_signature": False})


def assert_oauth_error(response, status: int, error: str, *, hidden=()) -> dict:
    """The RFC 6749 §5.2 error shape; ``hidden`` are credentials that must not be echoed."""
    assert response.status_code == status, response.content
    assert_no_store(response)
    body = response.json()
    # RFC 6749 §5.2 allows extra members: a refused refresh says why (test_refusal_reasons.py).
    assert set(body) - {"reason"} == {"error", "error_description"}
    assert body["error"] == error
    assert isinstance(body["error_description"], str)
    assert body["error_description"].strip()
    headers = "\n".join(f"{name}: {value}" for name, value in response.items())
    for credential in hidden:
        assert credential not in response.content.decode()
        assert credential not in headers
    if status == 401:
        assert response["WWW-Authenticate"].startswith("Basic")
    return body


def creds(client_and_secret) -> tuple[str, str | None]:
    client_obj, secret = client_and_secret
    return client_obj.client_id, secret


def password_params(username: str = "alice", password: str = PASSWORD, **extra) -> dict:
    return {"grant_type": "password", "username": username, "password": password, **extra}


def refresh_params(refresh_token: str, **extra) -> dict:
    return {"grant_type": "refresh_token", "refresh_token": refresh_token, **extra}


def with_body_credentials(params: dict, client_and_secret) -> dict:
    client_obj, secret = client_and_secret
    return {**params, "client_id": client_obj.client_id, "client_secret": secret}


def post_raw(client, body: str | bytes, *, content_type: str = FORM, **extra):
    return client.generic("POST", TOKEN_URL, body, content_type=content_type, **extra)


# -- Successful grants --------------------------------------------------------


@STYLES
@ENCODINGS
def test_client_credentials_acts_as_the_clients_owner(
    token_request, oauth_client, style, encoding
):
    client_obj, _ = oauth_client
    response = token_request(
        {"grant_type": "client_credentials"},
        auth=creds(oauth_client),
        style=style,
        encoding=encoding,
    )

    body = assert_token_response(response)
    claims = claims_of(body["access_token"])
    assert claims["sub"] == str(client_obj.owner.pk)
    assert claims["client_id"] == client_obj.client_id
    pair = TokenPair.objects.get(pk=claims["jti"])
    assert pair.user_id == client_obj.owner.pk
    assert pair.client_id == client_obj.pk


@STYLES
@ENCODINGS
def test_password_grant_issues_a_pair_for_the_user(
    token_request, oauth_client, user, style, encoding
):
    response = token_request(
        password_params(), auth=creds(oauth_client), style=style, encoding=encoding
    )

    body = assert_token_response(response)
    claims = claims_of(body["access_token"])
    assert claims["sub"] == str(user.pk)
    assert TokenPair.objects.get(pk=claims["jti"]).user_id == user.pk


@STYLES
@ENCODINGS
def test_refresh_grant_issues_a_new_pair_in_the_same_family(
    token_request, oauth_client, login, style, encoding
):
    first = login()

    response = token_request(
        refresh_params(first["refresh_token"]),
        auth=creds(oauth_client),
        style=style,
        encoding=encoding,
    )

    body = assert_token_response(response)
    assert body["refresh_token"] != first["refresh_token"]
    assert body["access_token"] != first["access_token"]
    parent = TokenPair.objects.get(pk=claims_of(first["access_token"])["jti"])
    child = TokenPair.objects.get(pk=claims_of(body["access_token"])["jti"])
    assert child.parent_id == parent.pk
    assert child.family_id == parent.family_id


def test_lifetimes_follow_the_settings(settings, token_request, oauth_client, user):
    settings.TOKEN_LIFECYCLE = {
        "ACCESS_TOKEN_LIFETIME": timedelta(hours=1, seconds=1),
        "REFRESH_TOKEN_LIFETIME": timedelta(days=2, seconds=7),
        "REFRESH_GRACE_PERIOD": timedelta(minutes=5),
    }

    response = token_request(password_params(), auth=creds(oauth_client))

    assert_token_response(response, access_seconds=3601, refresh_seconds=2 * DAY + 7)


def test_lifetimes_follow_the_clients_overrides(token_request, make_client, login):
    partner = make_client(
        "short-lived",
        access_token_lifetime=timedelta(minutes=5),
        refresh_token_lifetime=timedelta(hours=1),
        refresh_grace_period=timedelta(minutes=1),
    )
    first = login(client_creds=creds(partner))
    assert first["expires_in"] == 300
    assert first["refresh_expires_in"] == 3600

    response = token_request(refresh_params(first["refresh_token"]), auth=creds(partner))

    assert_token_response(response, access_seconds=300, refresh_seconds=3600)


class TestScope:
    def test_no_scope_member_when_the_client_has_no_scopes(self, login):
        assert "scope" not in login()

    def test_all_of_the_clients_scopes_by_default(self, make_client, login):
        partner = make_client("scoped", scope="write read")

        body = login(client_creds=creds(partner))

        assert body["scope"] == "read write"
        assert claims_of(body["access_token"])["scope"] == "read write"

    def test_a_narrower_scope_can_be_requested(self, token_request, make_client, user):
        partner = make_client("scoped", scope="read write")

        response = token_request(password_params(scope="read"), auth=creds(partner))

        assert assert_token_response(response)["scope"] == "read"

    def test_refresh_keeps_the_scope(self, token_request, make_client, login):
        partner = make_client("scoped", scope="read write")
        first = login(client_creds=creds(partner))

        response = token_request(refresh_params(first["refresh_token"]), auth=creds(partner))

        assert assert_token_response(response)["scope"] == "read write"

    def test_refresh_may_narrow_the_scope(self, token_request, make_client, login):
        partner = make_client("scoped", scope="read write")
        first = login(client_creds=creds(partner))

        response = token_request(
            refresh_params(first["refresh_token"], scope="read"), auth=creds(partner)
        )

        assert assert_token_response(response)["scope"] == "read"


@pytest.mark.parametrize(
    "content_type",
    [
        pytest.param("application/x-www-form-urlencoded; charset=UTF-8", id="form-charset"),
        pytest.param("application/json; charset=utf-8", id="json-charset"),
        pytest.param('application/json;charset="UTF-8"', id="json-quoted-charset"),
    ],
)
def test_a_charset_parameter_on_the_content_type_is_accepted(
    client, oauth_client, user, content_type
):
    """RFC 9110 §8.3: ``; charset=...`` does not change the media type (jQuery, axios send it)."""
    params = with_body_credentials(password_params(), oauth_client)
    body = json.dumps(params) if "json" in content_type else urlencode(params)

    response = post_raw(client, body, content_type=content_type)

    assert_token_response(response)


def test_content_type_is_case_insensitive(client, oauth_client, user):
    params = with_body_credentials(password_params(), oauth_client)

    response = post_raw(client, urlencode(params), content_type=FORM.upper())

    assert_token_response(response)


# -- Public clients ------------------------------------------------------------


@pytest.fixture
def public_client(make_client):
    return make_client("mobile-app", public=True)


class TestPublicClients:
    @ENCODINGS
    def test_password_grant_with_client_id_only(
        self, token_request, public_client, user, encoding
    ):
        client_obj, _ = public_client
        response = token_request(
            password_params(), auth=(client_obj.client_id, None), encoding=encoding
        )

        body = assert_token_response(response)
        assert claims_of(body["access_token"])["client_id"] == client_obj.client_id

    def test_basic_auth_with_an_empty_secret(self, client, public_client, user):
        client_obj, _ = public_client
        response = client.post(
            TOKEN_URL,
            urlencode(password_params()),
            content_type=FORM,
            HTTP_AUTHORIZATION=basic_auth(client_obj.client_id, ""),
        )

        assert_token_response(response)

    def test_refresh_with_client_id_only(self, token_request, public_client, user):
        client_id = public_client[0].client_id
        first = token_request(password_params(), auth=(client_id, None)).json()

        response = token_request(refresh_params(first["refresh_token"]), auth=(client_id, None))

        assert_token_response(response)

    @STYLES
    def test_a_public_client_sending_a_secret_is_refused(
        self, token_request, public_client, user, style
    ):
        client_id = public_client[0].client_id
        response = token_request(
            password_params(), auth=(client_id, "cs_made-up-secret"), style=style
        )

        assert_oauth_error(response, 401, "invalid_client", hidden=["cs_made-up-secret"])
        assert not TokenPair.objects.exists()

    def test_client_credentials_is_refused(self, token_request, public_client):
        client_id = public_client[0].client_id
        response = token_request({"grant_type": "client_credentials"}, auth=(client_id, None))

        assert_oauth_error(response, 400, "unauthorized_client")

    def test_client_credentials_is_refused_even_if_configured(self, token_request, public_client):
        """Defence in depth: a row saved without validation still cannot act as its owner."""
        client_obj, _ = public_client
        Client.objects.filter(pk=client_obj.pk).update(grant_types="client_credentials password")

        response = token_request(
            {"grant_type": "client_credentials"}, auth=(client_obj.client_id, None)
        )

        assert_oauth_error(response, 400, "unauthorized_client")
        assert not TokenPair.objects.exists()


# -- invalid_request -------------------------------------------------------------


class TestInvalidRequest:
    @ENCODINGS
    def test_missing_grant_type(self, token_request, oauth_client, encoding):
        response = token_request({}, auth=creds(oauth_client), encoding=encoding)

        assert_oauth_error(response, 400, "invalid_request", hidden=[oauth_client[1]])

    @pytest.mark.parametrize(
        "params",
        [
            pytest.param({"grant_type": "password", "password": PASSWORD}, id="no-username"),
            pytest.param({"grant_type": "password", "username": "alice"}, id="no-password"),
            pytest.param(
                {"grant_type": "password", "username": "alice", "password": ""},
                id="empty-password",
            ),
            pytest.param({"grant_type": "refresh_token"}, id="no-refresh-token"),
            pytest.param({"grant_type": "refresh_token", "refresh_token": ""}, id="empty-token"),
        ],
    )
    @ENCODINGS
    def test_missing_grant_parameter(self, token_request, oauth_client, user, params, encoding):
        """RFC 6749 §3.1: a parameter sent without a value is treated as omitted."""
        response = token_request(params, auth=creds(oauth_client), encoding=encoding)

        assert_oauth_error(response, 400, "invalid_request", hidden=[PASSWORD, oauth_client[1]])
        assert not TokenPair.objects.exists()

    @pytest.mark.parametrize(
        "body_fields",
        [
            pytest.param(["client_secret"], id="basic-and-body-secret"),
            pytest.param(["client_id", "client_secret"], id="basic-and-both"),
        ],
    )
    def test_two_client_authentication_methods(self, client, oauth_client, user, body_fields):
        """RFC 6749 §2.3: a client must not use more than one authentication method."""
        client_obj, secret = oauth_client
        values = {"client_id": client_obj.client_id, "client_secret": secret}
        params = {**password_params(), **{name: values[name] for name in body_fields}}

        response = client.post(
            TOKEN_URL,
            urlencode(params),
            content_type=FORM,
            HTTP_AUTHORIZATION=basic_auth(client_obj.client_id, secret),
        )

        assert_oauth_error(response, 400, "invalid_request", hidden=[secret, PASSWORD])
        assert not TokenPair.objects.exists()

    @pytest.mark.parametrize(
        "repeated",
        [
            pytest.param(("grant_type", "password"), id="same-grant-twice"),
            pytest.param(("grant_type", "client_credentials"), id="two-grants"),
            pytest.param(("username", "mallory"), id="two-usernames"),
            pytest.param(("client_id", "someone-else"), id="two-client-ids"),
        ],
    )
    def test_repeated_form_parameter(self, client, oauth_client, user, repeated):
        """RFC 6749 §3.1: parameters must not be included more than once."""
        params = with_body_credentials(password_params(), oauth_client)

        response = post_raw(client, urlencode([*params.items(), repeated]))

        assert_oauth_error(response, 400, "invalid_request", hidden=[oauth_client[1], PASSWORD])
        assert not TokenPair.objects.exists()

    def test_repeated_json_key(self, client, oauth_client, user):
        """The same rule for JSON bodies: a duplicated key must not silently pick one value."""
        client_obj, secret = oauth_client
        body = (
            '{"grant_type": "client_credentials", "grant_type": "password", '
            f'"username": "alice", "password": "{PASSWORD}", '
            f'"client_id": "{client_obj.client_id}", "client_secret": "{secret}"}}'
        )

        response = post_raw(client, body, content_type="application/json")

        assert_oauth_error(response, 400, "invalid_request", hidden=[secret, PASSWORD])
        assert not TokenPair.objects.exists()


# -- invalid_client ----------------------------------------------------------------


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


class TestInvalidClient:
    @ENCODINGS
    def test_no_client_authentication(self, token_request, user, encoding):
        response = token_request(password_params(), encoding=encoding)

        assert_oauth_error(response, 401, "invalid_client", hidden=[PASSWORD])

    @STYLES
    @ENCODINGS
    def test_unknown_client_id(self, token_request, user, style, encoding):
        response = token_request(
            password_params(),
            auth=("no-such-client", "cs_guessed-secret"),
            style=style,
            encoding=encoding,
        )

        assert_oauth_error(response, 401, "invalid_client", hidden=["cs_guessed-secret"])

    @STYLES
    @ENCODINGS
    def test_wrong_secret(self, token_request, oauth_client, user, style, encoding):
        wrong = "cs_not-the-right-secret-0123456789"
        response = token_request(
            password_params(),
            auth=(oauth_client[0].client_id, wrong),
            style=style,
            encoding=encoding,
        )

        assert_oauth_error(response, 401, "invalid_client", hidden=[wrong, PASSWORD])
        assert not TokenPair.objects.exists()

    def test_unknown_client_and_wrong_secret_get_the_same_answer(
        self, token_request, oauth_client
    ):
        """The answer must not reveal whether a client id exists."""
        unknown = token_request(
            {"grant_type": "client_credentials"}, auth=("no-such-client", "cs_x")
        )
        wrong = token_request(
            {"grant_type": "client_credentials"}, auth=(oauth_client[0].client_id, "cs_x")
        )

        assert unknown.status_code == wrong.status_code == 401
        assert unknown.json() == wrong.json()

    def test_confidential_client_without_its_secret(self, token_request, oauth_client, user):
        response = token_request(password_params(), auth=(oauth_client[0].client_id, None))

        assert_oauth_error(response, 401, "invalid_client", hidden=[PASSWORD])

    @STYLES
    def test_inactive_client(self, token_request, oauth_client, user, style):
        client_obj, secret = oauth_client
        client_obj.is_active = False
        client_obj.save()

        response = token_request(password_params(), auth=creds(oauth_client), style=style)

        assert_oauth_error(response, 401, "invalid_client", hidden=[secret, PASSWORD])
        assert not TokenPair.objects.exists()

    @pytest.mark.parametrize(
        "header",
        [
            pytest.param("Basic", id="no-credentials"),
            pytest.param("Basic ", id="empty-credentials"),
            pytest.param("Basic !!!not-base64!!!", id="not-base64"),
            pytest.param("Basic " + b64(b"no-colon-here"), id="no-colon"),
            pytest.param("Basic " + b64(b"\xff\xfe:\xfd"), id="not-utf8"),
            pytest.param("Basic " + b64(b"abc:%FF"), id="bad-percent-encoding"),
            pytest.param("Basic " + b64(b"abc:def")[:-1], id="truncated-base64"),
        ],
    )
    def test_malformed_basic_header(self, client, user, header):
        response = post_raw(
            client, urlencode({"grant_type": "client_credentials"}), HTTP_AUTHORIZATION=header
        )

        assert_oauth_error(response, 401, "invalid_client")


# -- invalid_grant -----------------------------------------------------------------


class TestInvalidGrant:
    @pytest.mark.parametrize(
        "username, password",
        [("alice", "not-the-password-42"), ("nobody", "not-the-password-42")],
        ids=["wrong-password", "unknown-user"],
    )
    @STYLES
    def test_bad_user_credentials(
        self, token_request, oauth_client, user, username, password, style
    ):
        response = token_request(
            password_params(username, password), auth=creds(oauth_client), style=style
        )

        assert_oauth_error(response, 400, "invalid_grant", hidden=[password, oauth_client[1]])
        assert not TokenPair.objects.exists()

    def test_inactive_user(self, token_request, oauth_client, user):
        user.is_active = False
        user.save()

        response = token_request(password_params(), auth=creds(oauth_client))

        assert_oauth_error(response, 400, "invalid_grant", hidden=[PASSWORD])
        assert not TokenPair.objects.exists()

    def test_unknown_refresh_token(self, token_request, oauth_client):
        made_up = "rt_" + "A" * 43
        response = token_request(refresh_params(made_up), auth=creds(oauth_client))

        assert_oauth_error(response, 400, "invalid_grant", hidden=[made_up])

    def test_another_clients_refresh_token(self, token_request, make_client, login):
        """The token is bound to the client it was issued to (RFC 6749 §6)."""
        issued = login()
        other = make_client("other")

        response = token_request(refresh_params(issued["refresh_token"]), auth=creds(other))

        assert_oauth_error(response, 400, "invalid_grant", hidden=[issued["refresh_token"]])
        assert TokenPair.objects.count() == 1
        assert TokenPair.objects.get().rotated_at is None

    def test_another_clients_token_looks_like_an_unknown_one(
        self, token_request, make_client, login
    ):
        issued = login()
        other = make_client("other")

        foreign = token_request(refresh_params(issued["refresh_token"]), auth=creds(other))
        unknown = token_request(refresh_params("rt_" + "B" * 43), auth=creds(other))

        assert foreign.json() == unknown.json()

    def test_access_token_as_refresh_token(self, token_request, oauth_client, login):
        issued = login()

        response = token_request(refresh_params(issued["access_token"]), auth=creds(oauth_client))

        assert_oauth_error(response, 400, "invalid_grant", hidden=[issued["access_token"]])
        assert TokenPair.objects.count() == 1


# -- unsupported_grant_type, unauthorized_client -------------------------------------


@pytest.mark.parametrize(
    "grant_type",
    [
        "implicit",
        "foo",
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "PASSWORD",
    ],
)
@ENCODINGS
def test_unsupported_grant_type(token_request, oauth_client, user, grant_type, encoding):
    response = token_request(
        {"grant_type": grant_type, "username": "alice", "password": PASSWORD},
        auth=creds(oauth_client),
        encoding=encoding,
    )

    assert_oauth_error(response, 400, "unsupported_grant_type", hidden=[PASSWORD])
    assert not TokenPair.objects.exists()


class TestUnauthorizedClient:
    def test_password_grant_not_allowed(self, token_request, make_client, user):
        server_only = make_client("server", grant_types="client_credentials")

        response = token_request(password_params(), auth=creds(server_only))

        assert_oauth_error(response, 400, "unauthorized_client", hidden=[PASSWORD])
        assert not TokenPair.objects.exists()

    def test_client_credentials_not_allowed(self, token_request, make_client):
        login_only = make_client("spa", grant_types="password")

        response = token_request({"grant_type": "client_credentials"}, auth=creds(login_only))

        assert_oauth_error(response, 400, "unauthorized_client")
        assert not TokenPair.objects.exists()

    def test_client_credentials_with_an_inactive_owner(self, token_request, oauth_client):
        """The pair would act as the owner, whose account is disabled."""
        owner = oauth_client[0].owner
        owner.is_active = False
        owner.save()

        response = token_request({"grant_type": "client_credentials"}, auth=creds(oauth_client))

        assert_oauth_error(response, 400, "unauthorized_client", hidden=[oauth_client[1]])
        assert not TokenPair.objects.exists()


# -- invalid_scope -----------------------------------------------------------------


class TestInvalidScope:
    @pytest.mark.parametrize(
        "client_scope, requested",
        [("", "read"), ("read", "write"), ("read", "read write")],
        ids=["client-has-none", "other-scope", "superset"],
    )
    @pytest.mark.parametrize("grant", ["password", "client_credentials"])
    def test_scope_the_client_does_not_have(
        self, token_request, make_client, user, client_scope, requested, grant
    ):
        partner = make_client("scoped", scope=client_scope)
        params = password_params() if grant == "password" else {"grant_type": grant}

        response = token_request({**params, "scope": requested}, auth=creds(partner))

        assert_oauth_error(response, 400, "invalid_scope", hidden=[PASSWORD])
        assert not TokenPair.objects.exists()

    @pytest.mark.parametrize(
        "requested",
        ["read\u3000write", "read\twrite", 'read "write"', "read\\write", "réad"],
        ids=["ideographic-space", "tab", "quote", "backslash", "non-ascii"],
    )
    def test_malformed_scope(self, token_request, make_client, user, requested):
        """RFC 6749 §3.3: printable ASCII tokens separated by single spaces, nothing else."""
        partner = make_client("scoped", scope="read write")
        response = token_request(password_params(scope=requested), auth=creds(partner))
        assert_oauth_error(response, 400, "invalid_scope", hidden=[PASSWORD])
        assert not TokenPair.objects.exists()

    def test_refresh_cannot_widen_the_scope(self, token_request, make_client, user):
        """RFC 6749 §6: even to a scope the client has, beyond what this grant had."""
        partner = make_client("scoped", scope="read write")
        first = token_request(password_params(scope="read"), auth=creds(partner)).json()

        response = token_request(
            refresh_params(first["refresh_token"], scope="read write"), auth=creds(partner)
        )

        assert_oauth_error(response, 400, "invalid_scope", hidden=[first["refresh_token"]])
        assert TokenPair.objects.count() == 1
        assert TokenPair.objects.get().rotated_at is None


# -- Headers on every answer -----------------------------------------------------------


@pytest.mark.parametrize(
    "params, status",
    [
        pytest.param({"grant_type": "password", "username": "alice"}, 400, id="invalid-request"),
        pytest.param({"grant_type": "foo"}, 400, id="unsupported-grant"),
        pytest.param(password_params(password="wrong"), 400, id="invalid-grant"),
        pytest.param(password_params(scope="admin"), 400, id="invalid-scope"),
    ],
)
def test_errors_are_not_cached(token_request, oauth_client, user, params, status):
    response = token_request(params, auth=creds(oauth_client))

    assert response.status_code == status
    assert_no_store(response)


def test_invalid_client_error_is_not_cached(db, token_request):
    response = token_request({"grant_type": "client_credentials"}, auth=("nobody", "cs_x"))

    assert response.status_code == 401
    assert_no_store(response)


def test_answers_json_whatever_the_accept_header(token_request, oauth_client):
    response = token_request(
        {"grant_type": "client_credentials"}, auth=creds(oauth_client), HTTP_ACCEPT="text/html"
    )

    assert_token_response(response)


# -- RFC 6749 §2.3.1: one authentication method; a client_id beside it only names the client ---


def test_basic_credentials_with_the_same_client_id_in_the_body_authenticate(
    token_request, oauth_client
):
    """requests-oauthlib's ``include_client_id=True`` and many SDKs send both."""
    client, secret = oauth_client
    grant = {"grant_type": "client_credentials", "client_id": client.client_id}

    response = token_request(grant, auth=(client.client_id, secret), style="basic")

    assert response.status_code == 200, response.content


@pytest.mark.parametrize(
    "body",
    [
        {"client_id": "another-client"},  # names a second client
        {"client_secret": "cs_x"},  # a second method: client_secret_post
    ],
)
def test_two_clients_or_two_methods_in_one_request_are_refused(token_request, oauth_client, body):
    client, secret = oauth_client
    params = {"grant_type": "client_credentials", "client_id": client.client_id, **body}

    response = token_request(params, auth=(client.client_id, secret), style="basic")

    assert_oauth_error(response, 400, "invalid_request", hidden=[secret])
    assert not TokenPair.objects.exists()
