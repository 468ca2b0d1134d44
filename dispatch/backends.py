from collections.abc import Callable
from typing import Generic, TypeVar

from django.conf import settings
from django.core.signals import setting_changed

Backend = TypeVar("Backend")


class ProcessWide(Generic[Backend]):
    """The one instance of a back-end that this process uses: the Redis one when
    REDIS_URL is set (shared with every other process), the in-memory one otherwise.

    It is made when first asked for, and made anew when REDIS_URL changes, as it does
    in tests.
    """

    def __init__(self, *, redis: Callable[[str], Backend], memory: Callable[[], Backend]):
        self._redis = redis
        self._memory = memory
        self._instance: Backend | None = None
        setting_changed.connect(self._on_setting_changed, weak=False)

    def __call__(self) -> Backend:
        if self._instance is None:
            url = settings.REDIS_URL
            self._instance = self._redis(url) if url else self._memory()
        return self._instance

    def use(self, instance: Backend) -> None:
        """Use `instance` from now on (tests run both back-ends through the same code)."""
        self._instance = instance

    def reset(self) -> None:
        """Forget the instance, so the next call makes a new, empty one."""
        self._instance = None

    def _on_setting_changed(self, *, setting: str, **kwargs) -> None:
        if setting == "REDIS_URL":
            self.reset()
