"""The server under load, named by a base URL, and the refusal to load anyone else's.

A load generator pointed at the wrong host is a denial-of-service tool, so a target
must resolve to loopback addresses only, unless the operator says `--allow-remote`.
"""

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit


class TargetRefused(Exception):
    pass


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    secure: bool

    @property
    def ws_base(self) -> str:
        return f"{'wss' if self.secure else 'ws'}://{self._netloc}"

    @property
    def _netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def ws_url(self, path: str, **query: str) -> str:
        return f"{self.ws_base}{path}" + (f"?{urlencode(query)}" if query else "")


def is_loopback(host: str) -> bool:
    """Whether every address `host` resolves to is on this machine's loopback."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror:
        return False
    addresses = {info[4][0].split("%")[0] for info in infos}
    return bool(addresses) and all(ipaddress.ip_address(a).is_loopback for a in addresses)


def target_from_url(url: str, *, allow_remote: bool = False) -> Target:
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https", "ws", "wss"} or not parts.hostname:
        raise TargetRefused(f"{url!r} is not an http(s):// or ws(s):// URL with a host")
    secure = parts.scheme in {"https", "wss"}
    target = Target(parts.hostname, parts.port or (443 if secure else 80), secure)
    if not allow_remote and not is_loopback(target.host):
        raise TargetRefused(
            f"{target.host} is not this machine (loopback); pass --allow-remote to load "
            "a server you are entitled to load"
        )
    return target
