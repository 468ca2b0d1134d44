"""`hot_settings` reads each setting as Django's settings have it, keeps it as a plain
attribute, and reads it again once Django says it changed."""

from django.test import override_settings

from config.hot_settings import hot_settings


def test_a_setting_reads_as_django_has_it_and_is_kept(settings):
    settings.POSITION_BURST = 7

    assert hot_settings.POSITION_BURST == 7
    # Kept on the instance: later reads do not reach Django's settings.
    assert vars(hot_settings)["POSITION_BURST"] == 7


def test_a_changed_setting_is_read_again(settings):
    settings.POSITION_BURST = 7
    assert hot_settings.POSITION_BURST == 7

    settings.POSITION_BURST = 9
    assert hot_settings.POSITION_BURST == 9
    with override_settings(POSITION_BURST=4):
        assert hot_settings.POSITION_BURST == 4
    assert hot_settings.POSITION_BURST == 9


def test_a_change_to_one_setting_keeps_the_others(settings):
    settings.POSITION_BURST = 7
    settings.TRAIL_BATCH_SIZE = 12
    assert (hot_settings.POSITION_BURST, hot_settings.TRAIL_BATCH_SIZE) == (7, 12)

    settings.POSITION_BURST = 8

    assert vars(hot_settings)["TRAIL_BATCH_SIZE"] == 12
    assert "POSITION_BURST" not in vars(hot_settings)
