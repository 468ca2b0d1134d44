"""Distances on the Earth, shared by the location index and position validation."""

import math

# The radius Redis GEO computes its distances with (6 372 797.560856 m, from its
# geohash helper), not the IUGG mean radius of 6 371 008.8 m: with the same radius the
# in-process and the Redis location index report the same distances, where the mean
# radius would make them differ by 0.03 % (1.4 m at 5 km). Either is a sphere, and
# neither is closer to the real ellipsoid than a few tenths of a percent.
EARTH_RADIUS_M = 6_372_797.560856

# Redis GEO stores points as Web Mercator geohashes and refuses latitudes beyond this;
# taxi refuses them everywhere so that both back-ends of the index accept the same
# points. The northernmost settlements (Svalbard, about 79°N) are well inside.
MAX_LATITUDE = 85.05112878


def distance_m(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """The great-circle distance in metres between two points, by the haversine formula."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    half_dphi = (phi2 - phi1) / 2
    half_dlambda = math.radians(lng2 - lng1) / 2
    a = math.sin(half_dphi) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(half_dlambda) ** 2
    # min() keeps rounding from pushing `a` past 1 for antipodal points.
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(min(a, 1.0)))


def distance_m_sql(lat1: str, lng1: str, lat2: str, lng2: str) -> str:
    """`distance_m` as PostgreSQL computes it: the same operations in the same order,
    over the SQL expressions given for the two points, so that a distance the database
    measures is the one Python would."""
    radius = f"CAST({EARTH_RADIUS_M!r} AS double precision)"
    phi1, phi2 = f"radians({lat1})", f"radians({lat2})"
    half_dphi = f"({phi2} - {phi1}) / 2"
    half_dlambda = f"radians({lng2} - {lng1}) / 2"
    a = f"power(sin({half_dphi}), 2) + cos({phi1}) * cos({phi2}) * power(sin({half_dlambda}), 2)"
    return f"2 * {radius} * asin(sqrt(least({a}, 1.0)))"
