"""Settings read for every message a socket handles, as plain attributes.

A read of `django.conf.settings` goes through its lazy object's `__getattribute__`,
written in Python: 0.3 to 0.6 µs, against 0.03 for an attribute of a plain object, and
a driver's position takes nine (docs/benchmarks.md, finding 82). `hot_settings` reads
each setting from Django's settings once, and again after Django says it changed
(`setting_changed`, which `override_settings` and pytest-django's `settings` send).
"""

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver


class _HotSettings:
    def __getattr__(self, name: str):
        # Only for a setting not read yet: once read, it is an attribute of the instance.
        value = getattr(settings, name)
        setattr(self, name, value)
        return value


hot_settings = _HotSettings()


@receiver(setting_changed)
def _forget(setting, **kwargs):
    hot_settings.__dict__.pop(setting, None)
