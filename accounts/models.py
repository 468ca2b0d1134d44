from django.contrib.auth.models import AbstractUser, UserManager
from django.db import models
from django.db.models.functions import Lower


class TaxiUserManager(UserManager):
    def get_by_natural_key(self, username):
        # Usernames are unique regardless of case, so log-in ignores case too.
        return self.get(username__iexact=username)


class User(AbstractUser):
    class Role(models.TextChoices):
        RIDER = "rider", "Rider"
        DRIVER = "driver", "Driver"

    # Named "group" on the wire, as the course's clients expect; a column instead of a
    # Django auth group so that reading it never costs a join.
    role = models.CharField(max_length=10, choices=Role.choices, blank=True, db_index=True)
    photo = models.ImageField(upload_to="photos/", blank=True)
    # Set by staff; drivers need it to go online when DRIVER_APPROVAL_REQUIRED is on.
    driver_approved_at = models.DateTimeField(null=True, blank=True)

    objects = TaxiUserManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(Lower("username"), name="username_unique_ignoring_case"),
        ]

    @property
    def group(self) -> str:
        return self.role

    @property
    def rights(self) -> tuple[bool, str, bool]:
        """What this user may do in taxi depends on these alone: whether they are
        active, their role, and whether they are an approved driver."""
        return (self.is_active, self.role, self.driver_approved_at is not None)

    @property
    def is_rider(self) -> bool:
        return self.role == self.Role.RIDER

    @property
    def is_driver(self) -> bool:
        return self.role == self.Role.DRIVER

    @property
    def is_approved_driver(self) -> bool:
        return self.is_driver and self.driver_approved_at is not None

    @property
    def photo_url(self) -> str | None:
        # Read as stored, not through `self.photo`: that makes the field's file object,
        # which refers back to this user, and keeps it on the user, a reference cycle
        # that only the garbage collector frees. Every user read for a socket or an
        # event would wait for a collection, and make each one longer
        # (docs/benchmarks.md, finding 93).
        try:
            stored = vars(self)["photo"]
        except KeyError:  # left out of the read that made this user: read now
            stored = self.photo
        return photo_url(getattr(stored, "name", stored))  # a file, or the name as stored


def photo_url(name: str | None) -> str | None:
    """Where the photo stored as `name` is served, if there is one: a path relative to
    the server, identical over REST and WebSocket, so that a client following events
    ends where a fresh REST fetch is."""
    return User.photo.field.storage.url(name) if name else None
