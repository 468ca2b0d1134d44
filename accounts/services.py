from django.contrib.auth import logout
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import RefreshToken

from accounts import sessions
from accounts.errors import InvalidRefreshToken, UsernameTaken
from accounts.models import User
from realtime.delivery import SESSION_END, deliver_on_commit, sessions_end, to_group, user_group


def user_sign_up(
    *,
    username: str,
    password: str,
    role: str,
    first_name: str = "",
    last_name: str = "",
    photo: UploadedFile | None = None,
) -> User:
    if User.objects.filter(username__iexact=username).exists():
        raise UsernameTaken("A user with that username already exists.")
    user = User(username=username, first_name=first_name, last_name=last_name, role=role)
    user.set_password(password)
    if photo is not None:
        user.photo.save(photo.name, photo, save=False)
    try:
        # The savepoint keeps an outer transaction usable when a racing sign-up wins.
        with transaction.atomic():
            user.save()
    except IntegrityError as error:
        raise UsernameTaken("A user with that username already exists.") from error
    return user


def user_profile_update(
    *,
    user: User,
    first_name: str | None = None,
    last_name: str | None = None,
    photo: UploadedFile | None = None,
) -> User:
    changed = []
    if first_name is not None:
        user.first_name = first_name
        changed.append("first_name")
    if last_name is not None:
        user.last_name = last_name
        changed.append("last_name")
    if photo is not None:
        user.photo.save(photo.name, photo, save=False)
        changed.append("photo")
    if changed:
        user.save(update_fields=changed)
    return user


# The user's role as the course's clients read it from a token; a claim, not a right:
# whoever reads it confirms it against the database (trips.fast_list).
ROLE_CLAIM = "group"


def session_tokens_issue(*, user: User) -> dict[str, str]:
    """A new log-in session: a refresh/access pair whose payload the course clients read."""
    refresh = RefreshToken.for_user(user)
    refresh["id"] = user.pk  # simplejwt writes it as a string; the course sends a number
    refresh["username"] = user.username
    refresh["first_name"] = user.first_name
    refresh["last_name"] = user.last_name
    refresh[ROLE_CLAIM] = user.group
    refresh["photo"] = user.photo_url
    refresh[sessions.SESSION_CLAIM] = sessions.new_session_id()
    return {"access": str(refresh.access_token), "refresh": str(refresh)}


def user_log_out(*, request, user: User, refresh: str | None) -> None:
    """End the log-in session of `refresh` (its tokens, its sockets) and the web session."""
    ended = [sessions.web_session_id(request.session.session_key)]
    if refresh:
        try:
            token = RefreshToken(refresh)
        except TokenError as error:
            raise InvalidRefreshToken("The refresh token is invalid or expired.") from error
        if str(token.get("id")) != str(user.pk):
            raise InvalidRefreshToken("The refresh token belongs to another user.")
        token.blacklist()
        sid = token.get(sessions.SESSION_CLAIM)
        if sid:
            sessions.revoke(sid)
            ended.append(sid)
    logout(request)
    ended = [sid for sid in ended if sid is not None]
    if ended:
        deliver_on_commit([to_group(user_group(user.pk), sessions_end(ended))])


def user_sockets_close(*, user: User) -> None:
    """Close every socket of `user`, e.g. when staff deactivate the account."""
    deliver_on_commit([to_group(user_group(user.pk), SESSION_END)])


def drivers_approve(*, drivers) -> int:
    """Approve the not yet approved drivers among `drivers`; returns how many."""
    return drivers.filter(role=User.Role.DRIVER, driver_approved_at__isnull=True).update(
        driver_approved_at=timezone.now()
    )
