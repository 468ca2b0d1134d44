"""The workloads, by the name the command line and the suite use."""

from taxi_bench.workloads import connections, dispatch, relay, rest, tracking, trip_updates

WORKLOADS = {
    module.NAME: module for module in (connections, rest, trip_updates, dispatch, tracking, relay)
}
