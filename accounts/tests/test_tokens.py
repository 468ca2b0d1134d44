"""A token this server signed is checked without PyJWT, and every token, signed here or
not, well formed or not, comes out as PyJWT alone would have it."""

import base64
import hmac
import json
import time

import jwt
import pytest
from rest_framework_simplejwt.backends import TokenBackend
from rest_framework_simplejwt.exceptions import TokenBackendError
from rest_framework_simplejwt.settings import api_settings

from accounts.services import session_tokens_issue
from accounts.tokens import AccessToken, SignedHereBackend

pytestmark = pytest.mark.django_db

backend = AccessToken._token_backend
pyjwt_alone = TokenBackend(api_settings.ALGORITHM, api_settings.SIGNING_KEY)


def segment(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


HEADER = segment(b'{"alg":"HS256","typ":"JWT"}')


def signed(payload_segment: str, header: str = HEADER) -> str:
    """A token signed with the server's key, whatever its segments hold."""
    head = f"{header}.{payload_segment}"
    key = backend.prepared_signing_key
    return f"{head}.{segment(hmac.digest(key, head.encode(), 'sha256'))}"


def claims(**more) -> str:
    now = int(time.time())
    written = {"token_type": "access", "exp": now + 300, "iat": now, "jti": "j1", "id": 7}
    return segment(json.dumps({**written, **more}, separators=(",", ":")).encode())


def outcome(token_backend, token):
    try:
        return "taken", token_backend.decode(token)
    except TokenBackendError as refused:
        return "refused", type(refused), str(refused.args[0])


@pytest.fixture
def pyjwt_decodes(monkeypatch):
    made = []
    decode = jwt.decode

    def counted(token, *args, **kwargs):
        made.append(token)
        return decode(token, *args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counted)
    return made


def test_the_access_token_this_server_issues_is_checked_without_pyjwt(rider, pyjwt_decodes):
    access = session_tokens_issue(user=rider)["access"]

    token = AccessToken(access)
    again = AccessToken(access.encode())

    assert pyjwt_decodes == []
    assert token.payload == again.payload == pyjwt_alone.decode(access)
    assert token["id"] == rider.id


def test_the_header_taken_is_the_one_pyjwt_writes_for_the_servers_key(rider):
    access = session_tokens_issue(user=rider)["access"]

    assert access.partition(".")[0] == HEADER
    assert backend._header_written == HEADER


def tampered(access: str) -> dict[str, str]:
    """Tokens made from a real one, or signed with the server's key in shapes that are
    not the server's: each is PyJWT's to take or refuse."""
    head, _, signature = access.rpartition(".")
    header = head.partition(".")[0]
    flipped = ("B" if signature[0] == "A" else "A") + signature[1:]
    # The last character of a 22-byte segment carries four bits decoding drops.
    odd_bits = segment(b'{"id":7,"jti":"abcdefg"}')
    odd_bits = odd_bits[:-1] + chr(ord(odd_bits[-1]) + 1)
    standard = claims(extra="~~~~").replace("-", "+")
    assert "+" in standard
    now = int(time.time())
    return {
        "forged signature": f"{head}.{flipped}",
        "signature padded with =": f"{head}.{signature}=",
        "signature cut short": f"{head}.{signature[:-2]}",
        "no signature": f"{head}.",
        "two segments": head,
        "four segments": f"{access}.{signature}",
        "payload of another token": f"{header}.{claims(id=8)}.{signature}",
        "not ascii": f"{head}é.{signature}",
        "expired": signed(claims(exp=now - 10)),
        "issued in the future": signed(claims(iat=now + 60)),
        "not yet valid": signed(claims(nbf=now + 60)),
        "valid already": signed(claims(nbf=now - 60)),
        "expiry as a string": signed(claims(exp=str(now + 300))),
        "expiry as a float": signed(claims(exp=now + 300.5)),
        "expiry as a boolean": signed(claims(exp=True)),
        "jti a number": signed(claims(jti=5)),
        "subject a number": signed(claims(sub=5)),
        "subject a string": signed(claims(sub="5")),
        "audience": signed(claims(aud="elsewhere")),
        "issuer": signed(claims(iss="elsewhere")),
        "integer beyond 64 bits": signed(claims(id=2**70 + 1)),
        "nested claim": signed(claims(extra={"a": [1, 2]})),
        "null claim": signed(claims(extra=None)),
        "float claim": signed(claims(extra=0.1)),
        "lone surrogate": signed(claims(extra="\ud800")),
        "payload an array": signed(segment(b"[1,2]")),
        "payload not json": signed(segment(b"{id:7}")),
        "payload padded with =": signed(claims() + "=" * (-len(claims()) % 4 or 4)),
        "payload with unused bits set": signed(odd_bits),
        "payload with a character not base64url": signed(claims()[:4] + "!" + claims()[4:]),
        "payload in standard base64": signed(standard),
        "header with its keys the other way": signed(
            claims(), header=segment(b'{"typ":"JWT","alg":"HS256"}')
        ),
        "header of no algorithm": signed(claims(), header=segment(b'{"alg":"none"}')),
        "header of another HMAC": signed(claims(), header=segment(b'{"alg":"HS512","typ":"JWT"}')),
    }


def test_every_other_token_comes_out_as_pyjwt_alone_has_it(rider):
    access = session_tokens_issue(user=rider)["access"]
    cases = tampered(access)
    outcomes = {name: outcome(pyjwt_alone, token) for name, token in cases.items()}
    # The cases reach both sides of PyJWT, or they would show nothing.
    assert outcomes["signature padded with ="][0] == outcomes["subject a string"][0] == "taken"
    assert outcomes["forged signature"][0] == outcomes["not yet valid"][0] == "refused"
    assert outcomes["integer beyond 64 bits"][1]["id"] == 2**70 + 1

    for name, token in cases.items():
        assert outcome(backend, token) == outcomes[name], name


def test_pyjwt_decides_every_token_of_a_backend_with_an_audience(rider, pyjwt_decodes):
    access = session_tokens_issue(user=rider)["access"]
    with_audience = SignedHereBackend(
        api_settings.ALGORITHM, api_settings.SIGNING_KEY, audience="taxi"
    )

    with pytest.raises(TokenBackendError):
        with_audience.decode(access)

    assert pyjwt_decodes == [access]
