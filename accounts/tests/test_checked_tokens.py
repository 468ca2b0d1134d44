"""A token checked once is not checked again until it expires, and nothing else about
it is taken for granted."""

from datetime import timedelta

import pytest
import time_machine
from rest_framework_simplejwt.exceptions import InvalidToken
from rest_framework_simplejwt.tokens import AccessToken

from accounts.authentication import CheckedTokens, RevocableJWTAuthentication, checked_tokens
from accounts.services import session_tokens_issue
from accounts.tokens import SignedHereBackend

pytestmark = pytest.mark.django_db

authentication = RevocableJWTAuthentication()


@pytest.fixture
def decodes(monkeypatch):
    """Every signature check simplejwt makes."""
    made = []
    decode = SignedHereBackend.decode

    def counted(self, token, verify=True):
        made.append(token)
        return decode(self, token, verify)

    monkeypatch.setattr(SignedHereBackend, "decode", counted)
    return made


def test_a_token_is_checked_once_and_the_same_token_given_after(rider, decodes):
    access = session_tokens_issue(user=rider)["access"].encode()

    first = authentication.token_checked(access)
    again = authentication.token_checked(access)

    assert decodes == [access]
    assert again is first
    assert again["id"] == rider.id


def test_each_token_is_checked_by_its_own_bytes(rider, decodes):
    one, other = (session_tokens_issue(user=rider)["access"] for _ in range(2))

    authentication.token_checked(one)
    authentication.token_checked(other)
    authentication.token_checked(one.encode())

    assert decodes == [one, other, one.encode()]


def test_a_token_expired_since_is_checked_again_and_refused_as_before(rider, decodes):
    with time_machine.travel(0, tick=False) as traveller:
        token = AccessToken.for_user(rider)
        token.set_exp(lifetime=timedelta(seconds=60))
        access = str(token)
        authentication.token_checked(access)

        traveller.shift(61)
        with pytest.raises(InvalidToken) as refused:
            authentication.token_checked(access)
        with pytest.raises(InvalidToken):
            authentication.token_checked(access)

    assert decodes == [access, access, access]
    assert refused.value.detail["messages"][0]["message"] == "Token is expired"


def test_a_token_that_fails_is_never_taken_as_checked(rider, decodes):
    access = session_tokens_issue(user=rider)["access"]
    # The signature's first character: its last one carries bits that decoding drops.
    head, signature = access.rsplit(".", 1)
    forged = f"{head}.{'B' if signature[0] == 'A' else 'A'}{signature[1:]}"

    for _ in range(2):
        with pytest.raises(InvalidToken):
            authentication.token_checked(forged)

    assert decodes == [forged, forged]


def test_a_change_of_simplejwts_settings_forgets_every_token_checked(rider, decodes, settings):
    access = session_tokens_issue(user=rider)["access"]
    authentication.token_checked(access)

    settings.SIMPLE_JWT = {**settings.SIMPLE_JWT, "LEEWAY": 5}
    authentication.token_checked(access)

    assert decodes == [access, access]


def test_the_oldest_token_makes_way_beyond_the_size(rider, decodes, monkeypatch):
    monkeypatch.setattr("accounts.authentication.checked_tokens", CheckedTokens(2))
    first, second, third = (session_tokens_issue(user=rider)["access"] for _ in range(3))

    for access in (first, second, third, third, second, first):
        authentication.token_checked(access)

    assert decodes == [first, second, third, first]


def test_a_token_checked_before_its_session_was_logged_out_is_refused(rider, api_client):
    tokens = session_tokens_issue(user=rider)
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    assert api_client.get("/api/trip/").status_code == 200
    assert checked_tokens.get(tokens["access"].encode()) is not None

    assert api_client.post("/api/log_out/", {"refresh": tokens["refresh"]}).status_code == 204

    assert api_client.get("/api/trip/").status_code == 401
