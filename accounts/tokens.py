"""The access tokens this server accepts, and a faster first check of those it signed.

simplejwt checks a token with PyJWT, which (as of 2.15) prepares the key again for
every token (trying it as a PEM, an SSH and a DER key, and as JSON) and tests each
character of each segment in a Python loop: 130 to 240 µs of CPU a token here,
a tenth of what a socket's handshake costs the server (docs/benchmarks.md, finding 78).
`CheckedTokens` spares a token's later uses; a socket's handshake is usually its
token's first.

`SignedHereBackend` checks the one shape of token this server writes itself, an HMAC
with the header PyJWT writes for it, with the standard library's one-shot HMAC and
orjson. It accepts only tokens PyJWT would accept, with the same claims, and refuses
none: anything else, a forged token too, goes to PyJWT, as every token did before.
"""

import base64
import hmac
import time
from datetime import timedelta
from functools import cached_property

import orjson
from rest_framework_simplejwt import tokens
from rest_framework_simplejwt.backends import TokenBackend
from rest_framework_simplejwt.settings import api_settings

_HMAC_DIGESTS = {"HS256": "sha256", "HS384": "sha384", "HS512": "sha512"}

# Claims PyJWT checks beyond their type, or checks against settings this server does
# not use; a token carrying one is PyJWT's to judge.
_CLAIMS_FOR_PYJWT = frozenset({"nbf", "aud", "iss", "sub"})


# The values both readers read alike: orjson reads integers beyond 64 bits as floats,
# where Python's reader, PyJWT's, keeps them integers (and inside a list or an object
# they would have to be looked for).
_FLAT_TYPES = (str, int, bool, type(None))


def _base64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class SignedHereBackend(TokenBackend):
    """simplejwt's backend, checking itself the tokens signed the way this server signs.

    A token qualifies when the backend signs with an HMAC and has no audience, issuer
    or key set to fetch, the token's header is the very segment PyJWT writes for that
    HMAC, and its signature is the canonical base64url of the HMAC expected. Its claims
    are taken only when PyJWT would take them unchanged: a JSON object of strings,
    integers, booleans and nulls, `exp` and `iat` integers in their time, `jti` a
    string, and none of the claims PyJWT judges against settings. Anything else, PyJWT
    decides.
    """

    def decode(self, token, verify=True):
        if verify and self._checks_itself:
            payload = self._payload_signed_here(token)
            if payload is not None:
                return payload
        return super().decode(token, verify)

    @cached_property
    def _checks_itself(self) -> bool:
        return (
            self.algorithm in _HMAC_DIGESTS
            and self.audience is None
            and self.issuer is None
            and self.jwks_client is None
        )

    @cached_property
    def _header_written(self) -> str:
        return self.encode({}).partition(".")[0]

    def _payload_signed_here(self, token) -> dict | None:
        """The token's claims, or None for PyJWT to decide."""
        if isinstance(token, bytes):
            try:
                token = token.decode("ascii")
            except UnicodeDecodeError:
                return None
        if not isinstance(token, str) or not token.isascii():
            return None
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != self._header_written:
            return None
        header, payload_segment, signature = parts
        expected = hmac.digest(
            self.prepared_signing_key,
            f"{header}.{payload_segment}".encode("ascii"),
            _HMAC_DIGESTS[self.algorithm],
        )
        # PyJWT also takes a signature padded with "=", and refuses what this refuses.
        if not hmac.compare_digest(_base64url(expected), signature):
            return None
        return _claims_as_pyjwt_takes_them(payload_segment, self.get_leeway())


def _claims_as_pyjwt_takes_them(segment: str, leeway: timedelta) -> dict | None:
    try:
        written = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except ValueError:
        return None
    # Python's decoder passes over what is not base64url; PyJWT takes only the
    # segment's canonical spelling.
    if _base64url(written) != segment:
        return None
    try:
        claims = orjson.loads(written)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(claims, dict):
        return None
    if _CLAIMS_FOR_PYJWT.intersection(claims):
        return None
    if any(type(value) not in _FLAT_TYPES for value in claims.values()):
        return None
    now, slack = time.time(), leeway.total_seconds()
    expires = claims.get("exp")
    issued = claims.get("iat")
    if expires is not None and (type(expires) is not int or expires <= now - slack):
        return None
    if issued is not None and (type(issued) is not int or issued > now + slack):
        return None
    if "jti" in claims and type(claims["jti"]) is not str:
        return None
    return claims


class AccessToken(tokens.AccessToken):
    """simplejwt's access token, its first check made by `SignedHereBackend`."""

    _token_backend = SignedHereBackend(
        api_settings.ALGORITHM,
        api_settings.SIGNING_KEY,
        api_settings.VERIFYING_KEY,
        api_settings.AUDIENCE,
        api_settings.ISSUER,
        api_settings.JWK_URL,
        api_settings.LEEWAY,
        api_settings.JSON_ENCODER,
    )
