"""The times a tracked driver's positions carry: ISO 8601 in UTC, to the millisecond,
reading back as the very millisecond they were made from."""

from datetime import UTC, datetime

import pytest

from taxi_bench.workloads.tracking import timestamp, wall_ms

# A second's first and last milliseconds, the next second's, and the first again after
# them (each second's text is kept for the positions that share it).
MILLISECONDS = [1_796_334_591_000, 1_796_334_591_999, 1_796_334_592_007, 1_796_334_591_500]


@pytest.mark.parametrize("ms", MILLISECONDS)
def test_a_timestamp_is_iso_8601_in_utc_to_the_millisecond(ms):
    moment = datetime.fromtimestamp(ms / 1000, UTC).replace(microsecond=ms % 1000 * 1000)
    assert timestamp(ms) == moment.isoformat(timespec="milliseconds")


@pytest.mark.parametrize("ms", MILLISECONDS)
def test_a_timestamp_reads_back_as_its_millisecond(ms):
    assert wall_ms(timestamp(ms)) == ms
