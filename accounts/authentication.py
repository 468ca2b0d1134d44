import threading
import time

from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.translation import gettext_lazy as _
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import InvalidToken
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import Token

from accounts import sessions
from accounts.models import User
from accounts.selectors import user_by_id


class RevocableJWTAuthentication(JWTAuthentication):
    """simplejwt's checks (signature, type, expiry, active user) plus log-out.

    They come in two parts: the token's own (`token_checked`), which need no I/O, so a
    socket's handshake makes them on the event loop; and its session's and user's
    (`session_check`, `get_user`), which may read Redis and do read the database. A
    caller that reads the user with more in the same statement (a socket's handshake)
    makes the user's checks from their parts (`user_id_of`, `user_confirmed`).
    """

    def get_validated_token(self, raw_token):
        token = self.token_checked(raw_token)
        self.session_check(token)
        return token

    def token_checked(self, raw_token):
        """simplejwt's checks of the token itself: signature, type, expiry. A token
        checked before and not expired since is not checked again (`CheckedTokens`)."""
        token = checked_tokens.get(raw_token)
        if token is None:
            token = super().get_validated_token(raw_token)
            checked_tokens.add(raw_token, token)
        return token

    @staticmethod
    def session_check(token) -> None:
        if sessions.is_revoked(token.get(sessions.SESSION_CLAIM)):
            raise InvalidToken({"detail": _("This session has been logged out.")})

    def get_user(self, validated_token):
        """The token's user, refused as simplejwt refuses them, read with a composed
        query: every authenticated request and socket handshake reads it, and the
        ORM's compilation cost more than the read (docs/benchmarks.md, finding 25)."""
        if self.reads_user_its_own_way():
            return super().get_user(validated_token)
        return self.user_confirmed(user_by_id(self.user_id_of(validated_token)))

    @staticmethod
    def reads_user_its_own_way() -> bool:
        """Whether simplejwt must read the token's user itself. Tokens are revoked by
        log-in session here; simplejwt's own way of revoking them (a hash of the
        user's password in the token), should it be turned on, is simplejwt's to check."""
        return api_settings.CHECK_REVOKE_TOKEN

    @staticmethod
    def user_id_of(validated_token):
        if api_settings.USER_ID_CLAIM not in validated_token:
            raise InvalidToken(_("Token contained no recognizable user identification"))
        return validated_token[api_settings.USER_ID_CLAIM]

    @staticmethod
    def user_confirmed(user: User | None) -> User:
        """The token's user, read by its id (`user_id_of`), refused as simplejwt
        refuses them: gone, or inactive."""
        if user is None:
            raise AuthenticationFailed(_("User not found"), code="user_not_found")
        if not user.is_active:
            raise AuthenticationFailed(_("User is inactive"), code="user_inactive")
        return user


class CheckedTokens:
    """Access tokens that passed simplejwt's checks, by their exact bytes, until they
    expire.

    An app sends the same access token with every request and socket for the token's
    life, and checking it (PyJWT's decoding, the key prepared again, the signature) took
    about 125 µs of CPU each time, a quarter of the trip list's fast path
    (docs/benchmarks.md, finding 69). What was checked cannot change but by the clock:
    a token that has expired since is checked again, and so refused as it always was.
    Its session and user are confirmed on every use, apart from this. The oldest token
    makes way for a new one beyond `size`, each about 1.8 KB.
    """

    def __init__(self, size: int):
        self.size = size
        self._tokens: dict = {}
        self._lock = threading.Lock()

    def get(self, raw_token) -> Token | None:
        token = self._tokens.get(raw_token)
        if token is not None and token["exp"] <= time.time():
            with self._lock:
                self._tokens.pop(raw_token, None)
            return None
        return token

    def add(self, raw_token, token: Token) -> None:
        # Every change is made under the lock, so the oldest key is still there to go.
        with self._lock:
            while len(self._tokens) >= self.size:
                del self._tokens[next(iter(self._tokens))]
            self._tokens[raw_token] = token

    def clear(self) -> None:
        with self._lock:
            self._tokens.clear()


checked_tokens = CheckedTokens(4096)


@receiver(setting_changed)
def _checks_changed(setting, **kwargs):
    # A token checked with one key or lifetime says nothing under another (tests).
    if setting in ("SIMPLE_JWT", "SECRET_KEY"):
        checked_tokens.clear()
