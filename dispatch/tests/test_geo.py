"""Distances on the Earth: the database measures as Python does."""

import random

import pytest
from django.db import connection

from dispatch.geo import MAX_LATITUDE, distance_m, distance_m_sql

# The same point, legs of a few metres, across the antimeridian, from pole to pole,
# halfway round the Earth (where rounding could push the haversine past 1).
EDGES = [
    (51.5007, -0.1246, 51.5007, -0.1246),
    (51.5007, -0.1246, 51.50071, -0.12461),
    (10.0, 179.9999, 10.0, -179.9999),
    (MAX_LATITUDE, 0.0, -MAX_LATITUDE, 180.0),
    (0.0, 0.0, 0.0, 180.0),
    (-33.8688, 151.2093, 40.7128, -74.006),
]


def measured_by_postgresql(lat1, lng1, lat2, lng2) -> float:
    number = "CAST(%s AS double precision)"
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {distance_m_sql('lat1', 'lng1', 'lat2', 'lng2')} FROM (SELECT "
            f"{number} AS lat1, {number} AS lng1, {number} AS lat2, {number} AS lng2) AS legs",
            [lat1, lng1, lat2, lng2],
        )
        return cursor.fetchone()[0]


@pytest.mark.postgres
@pytest.mark.django_db
def test_postgresql_measures_a_distance_as_python_does():
    shuffle = random.Random(76)
    anywhere = [
        tuple(shuffle.uniform(-limit, limit) for limit in (MAX_LATITUDE, 180) * 2)
        for _ in range(200)
    ]

    for leg in EDGES + anywhere:
        assert measured_by_postgresql(*leg) == pytest.approx(distance_m(*leg), rel=1e-12)
