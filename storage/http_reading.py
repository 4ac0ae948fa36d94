"""Reading ``http://`` and ``https://`` URLs (no Beam here), with an address guard; Beam's
``FileSystems`` reach them through ``storage/filesystems.py``.

Image URLs are untrusted: before connecting, and again for every redirect, the host is
resolved and loopback, private, link-local, multicast, reserved and unspecified addresses
(IPv4, IPv6, IPv4-mapped and -embedded IPv6) are refused with :class:`BlockedAddress`; the
connection then goes to the address that was checked, never to a second DNS answer.
``HttpSettings.allow_networks`` opens chosen networks (intranets, tests). No proxy from the
environment is used. Failures are typed so that callers can tell permanent from transient:
:class:`FileNotFoundError` (404, 410), :class:`BlockedAddress`, :class:`HttpStatusError`
(``transient`` for 408, 429 and 5xx), :class:`TimeoutError`, :class:`IncompleteBody`.
"""

from __future__ import annotations

import dataclasses
import errno
import http.client
import io
import ipaddress
import socket
import ssl
import sys
import urllib.parse

from .deadline import Deadline

USER_AGENT = "nsfw-scan/0.1 (image moderation batch job; +https://github.com/yahoo/open_nsfw)"
REDIRECTS = (301, 302, 303, 307, 308)


@dataclasses.dataclass(frozen=True)
class HttpSettings:
    """How ``http://`` and ``https://`` URLs are fetched: the ``http`` section of the job's
    configuration (``configs/default.yaml`` explains each key)."""

    allow_networks: tuple[str, ...] = ()  # CIDRs that the address guard lets through
    timeout_s: float = 30.0  # connect, each read, and the whole answer of one request
    max_redirects: int = 5

    def networks(self) -> list:
        return [ipaddress.ip_network(cidr, strict=False) for cidr in self.allow_networks]

    def problems(self):
        """``(key, why)`` for each impossible value (the configuration names them)."""
        if self.timeout_s <= 0 or self.max_redirects < 0:
            yield "", "need timeout_s > 0 and max_redirects >= 0"
        for cidr in self.allow_networks:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except (TypeError, ValueError):
                yield "allow_networks", f"{cidr!r} is not a network like 10.0.0.0/8 or fd00::/8"


class BlockedAddress(PermissionError):
    """The URL's host resolves only to addresses the guard refuses; nothing was sent."""


class HttpStatusError(OSError):
    def __init__(self, status: int, url: str):
        super().__init__(f"HTTP {status} from {url}")
        self.status = status
        self.transient = status in (408, 429) or status >= 500


class IncompleteBody(ConnectionError):
    """The connection ended before the body's Content-Length was received."""


NAT64 = ipaddress.ip_network("64:ff9b::/96")  # a NAT64 gateway forwards these to the IPv4 address inside


def _embedded_ipv4(ip):
    """The IPv4 address an IPv6 address carries (mapped, NAT64, 6to4, Teredo client), if any."""
    if ip.version == 6:
        if ip in NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        return ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
    return None


def is_blocked(ip) -> bool:
    """Not a public unicast address: loopback, private, link-local, multicast, reserved,
    unspecified, shared (100.64/10), documentation, ...; IPv6 carrying such an IPv4 too."""
    if ip.version == 6 and (ip.ipv4_mapped or ip in NAT64):  # these reach the IPv4 address itself
        return is_blocked(_embedded_ipv4(ip))
    embedded = _embedded_ipv4(ip)
    if embedded is not None and is_blocked(embedded):
        return True
    return (ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_multicast or ip.is_reserved
            or ip.is_unspecified or not ip.is_global)


def checked_address(host: str, port: int, settings: HttpSettings) -> str:
    """An address of ``host`` that the guard allows; :class:`BlockedAddress` if none."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConnectionError(f"cannot resolve {host!r}: {exc.strerror}") from None
    allowed = settings.networks()
    refused = []
    for _, _, _, _, sockaddr in infos:
        address = sockaddr[0]
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        forms = [ip] + ([ip.ipv4_mapped] if ip.version == 6 and ip.ipv4_mapped else [])
        if not is_blocked(ip) or any(form in network for form in forms for network in allowed
                                     if form.version == network.version):
            return address
        refused.append(address)
    raise BlockedAddress(f"{host} resolves to {', '.join(sorted(set(refused)))}, which is not a public "
                         f"address (open it with http.allow_networks)")


class _PinnedHTTP(http.client.HTTPConnection):
    """An http.client connection that connects to an address chosen beforehand; the Host
    header (and, over TLS, the server name) stays the URL's host name. Its ``connect`` is
    http.client's, made to the checked address, so no second DNS lookup happens."""

    tls = False

    def __init__(self, host, port, address, timeout):
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self):
        sys.audit("http.client.connect", self, self.host, self.port)
        self.sock = socket.create_connection((self._address, self.port), self.timeout, self.source_address)
        try:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as exc:
            if exc.errno != errno.ENOPROTOOPT:
                raise
        if self.tls:
            self.sock = _TLS.wrap_socket(self.sock, server_hostname=self.host)


class _PinnedHTTPS(_PinnedHTTP):
    """Over TLS (``_TLS``: the system's trusted certificates, host names checked)."""

    default_port = http.client.HTTPS_PORT  # the Host header leaves it out, as for https
    tls = True


_TLS = ssl.create_default_context()


class HttpBody(io.RawIOBase):
    """A response body as a raw stream: each ``read`` is at most one socket read, which may
    take no longer than what is left of ``deadline``, or with no deadline (a long manifest)
    ``read_timeout``; a body shorter than its Content-Length raises :class:`IncompleteBody`.
    ``size``: the Content-Length, or None."""

    def __init__(self, connection, response, url: str, deadline: Deadline | None, read_timeout: float):
        self._connection = connection
        self._response = response
        self.url = url
        self._deadline = deadline
        self._read_timeout = read_timeout
        self.size = response.length  # None for chunked or close-delimited bodies
        self._received = 0

    def readable(self):
        return True

    def readinto(self, buffer) -> int:
        left = self._read_timeout if self._deadline is None else self._deadline.left()
        if self._connection.sock is not None:
            self._connection.sock.settimeout(left)
        data = self._response.read1(len(buffer))
        n = len(data)
        buffer[:n] = data
        self._received += n
        if n == 0 and self.size is not None and self._received < self.size:
            raise IncompleteBody(f"{self.url}: body ended after {self._received} of {self.size} bytes")
        return n

    def close(self):
        if not self.closed:
            self._response.close()
            self._connection.close()
        super().close()


def open_url(url: str, settings: HttpSettings = HttpSettings(), whole_answer_timeout: bool = True,
             deadline: Deadline | None = None) -> HttpBody:
    """GET ``url`` (following redirects, each one checked by the guard) and return the body.
    ``deadline`` (by default ``settings.timeout_s`` from now) bounds the whole answer, or with
    ``whole_answer_timeout=False`` the answer's headers, and ``settings.timeout_s`` each read
    of the body."""
    deadline = deadline or Deadline(settings.timeout_s, url)
    for _ in range(settings.max_redirects + 1):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise HttpStatusError(0, f"{url} (not an http(s) URL)")
        https = parts.scheme == "https"
        port = parts.port or (443 if https else 80)
        address = checked_address(parts.hostname, port, settings)
        kind = _PinnedHTTPS if https else _PinnedHTTP
        connection = kind(parts.hostname, port, address, deadline.left())
        target = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
        try:
            connection.request("GET", target, headers={"User-Agent": USER_AGENT, "Accept": "image/*,*/*;q=0.5"})
            response = connection.getresponse()
        except BaseException:
            connection.close()
            raise
        if response.status == 200:
            return HttpBody(connection, response, url, deadline if whole_answer_timeout else None, settings.timeout_s)
        location = response.getheader("Location")
        response.close()
        connection.close()
        if response.status in (404, 410):
            raise FileNotFoundError(f"HTTP {response.status} from {url}")
        if response.status not in REDIRECTS or not location:
            raise HttpStatusError(response.status, url)
        url = urllib.parse.urljoin(url, location)
    raise HttpStatusError(0, f"{url} (more than {settings.max_redirects} redirects)")
