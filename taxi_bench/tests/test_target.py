import pytest

from taxi_bench.target import TargetRefused, target_from_url


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8000", "ws://127.0.0.2:9", "http://[::1]:8000", "http://localhost"]
)
def test_loopback_targets_are_accepted(url):
    assert target_from_url(url).host in url


@pytest.mark.parametrize(
    "url", ["http://192.0.2.10:8000", "wss://10.1.2.3/", "http://[2001:db8::1]/"]
)
def test_other_hosts_are_refused_unless_allowed(url):
    with pytest.raises(TargetRefused, match="allow-remote"):
        target_from_url(url)
    assert target_from_url(url, allow_remote=True).host


def test_a_url_without_a_host_is_refused():
    with pytest.raises(TargetRefused):
        target_from_url("127.0.0.1:8000", allow_remote=True)


def test_a_secure_target_speaks_wss():
    target = target_from_url("https://127.0.0.1:8443")
    assert target.ws_url("/taxi/", token="a b") == "wss://127.0.0.1:8443/taxi/?token=a+b"
