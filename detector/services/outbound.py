"""Requests the server makes to addresses users give it (callbacks, media links), and the rules they obey.

A user-given URL can point anywhere, including at the server's own network (the database, a cloud's metadata
service at 169.254.169.254). So every outbound request: is http or https (plain http only where
``DETECTOR_ALLOW_PRIVATE_URLS`` is on, as in development); resolves the host name once and checks every address it
got against the refused ranges (loopback, private, link-local, multicast, reserved, the metadata addresses), then
connects to that very address (the name is never resolved a second time, so it cannot be rebound between the check
and the connection), with TLS verified for the name; follows at most ``MAX_REDIRECTS`` redirects, each checked the
same way; stops reading past ``max_bytes``; and gives up after ``timeout`` seconds in all.

Name resolution is ``DETECTOR_URL_RESOLVER`` (a dotted path; the tests put a stub there so that nothing waits on
DNS).
"""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import urllib3
from django.conf import settings
from django.utils.module_loading import import_string

MAX_REDIRECTS = 3
USER_AGENT = "DeepfakeCheck/3 (+https://github.com/; self-hosted)"
# Addresses no user-given URL may reach, beside what ipaddress calls private, loopback, link-local and so on.
METADATA = (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fd00:ec2::/32"))


class UrlRefused(Exception):
    """The URL may not be requested (its scheme, its address); the message says why, for the user."""


class FetchFailed(Exception):
    """The request was made and failed: no answer in time, too large, a broken connection, too many redirects."""


def resolve(host: str, port: int) -> list[str]:
    """Every address of ``host`` (the system resolver)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UrlRefused(f"the host name {host!r} does not resolve") from exc
    return list(dict.fromkeys(info[4][0] for info in infos))


def _resolver():
    return import_string(settings.DETECTOR_URL_RESOLVER)


def refused_address(address: str) -> str | None:
    """Why an address may not be reached, or None where it may."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if ip.version == 6 and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    if any(ip in net for net in METADATA):
        return "a link-local or cloud metadata address"
    for attribute, words in (
        ("is_loopback", "a loopback address"),
        ("is_private", "a private network address"),
        ("is_link_local", "a link-local address"),
        ("is_multicast", "a multicast address"),
        ("is_reserved", "a reserved address"),
        ("is_unspecified", "an unspecified address"),
    ):
        if getattr(ip, attribute):
            return words
    return None


@dataclass
class Target:
    """A checked URL: where to connect (the address resolved once) and what to call it."""

    url: str
    scheme: str
    host: str
    port: int
    address: str
    path: str


def check_url(url: str) -> Target:
    """Check a URL's scheme and every address its host resolves to; raises UrlRefused with the reason."""
    allow_private = settings.DETECTOR_ALLOW_PRIVATE_URLS
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https"):
        raise UrlRefused("only http and https links can be used")
    if parts.scheme == "http" and not allow_private:
        raise UrlRefused("plain http is not accepted here: use an https link")
    if not parts.hostname:
        raise UrlRefused("the link has no host name")
    if parts.username or parts.password:
        raise UrlRefused("links with a user name or password are not accepted")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise UrlRefused("the link's port is not a number") from exc
    host = parts.hostname
    try:
        addresses = [str(ipaddress.ip_address(host))]
    except ValueError:
        addresses = _resolver()(host, port)
    if not addresses:
        raise UrlRefused(f"the host name {host!r} does not resolve")
    if not allow_private:
        for address in addresses:
            why = refused_address(address)
            if why:
                raise UrlRefused(f"{host} is {why}, which this server does not contact")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(url.strip(), parts.scheme, host, port, addresses[0], path)


@dataclass
class Response:
    status: int
    headers: dict
    body: bytes
    url: str  # after redirects
    redirects: list[str] = field(default_factory=list)


def _pool(target: Target, timeout: urllib3.Timeout):
    if target.scheme == "https":
        return urllib3.HTTPSConnectionPool(
            target.address,
            target.port,
            timeout=timeout,
            retries=False,
            server_hostname=target.host,
            assert_hostname=target.host,
            cert_reqs="CERT_REQUIRED",
        )
    return urllib3.HTTPConnectionPool(target.address, target.port, timeout=timeout, retries=False)


def request(
    method: str,
    url: str,
    *,
    body: bytes | None = None,
    headers: dict | None = None,
    timeout: float,
    max_bytes: int,
    follow_redirects: bool = True,
) -> Response:
    """One request by the rules above (redirects only for GET). Raises UrlRefused or FetchFailed."""
    deadline = time.monotonic() + timeout
    seen = []
    current = url
    while True:
        target = check_url(current)
        left = deadline - time.monotonic()
        if left <= 0:
            raise FetchFailed(f"no answer within {timeout:g} seconds")
        pool = _pool(target, urllib3.Timeout(connect=min(left, 5.0), read=left))
        host_header = target.host if target.port in (80, 443) else f"{target.host}:{target.port}"
        try:
            response = pool.urlopen(
                method,
                target.path,
                body=body,
                headers={"Host": host_header, "User-Agent": USER_AGENT, **(headers or {})},
                redirect=False,
                preload_content=False,
                assert_same_host=False,
            )
            try:
                if follow_redirects and method == "GET" and response.status in (301, 302, 303, 307, 308):
                    location = response.headers.get("Location")
                    if not location:
                        raise FetchFailed(f"a redirect ({response.status}) without a Location")
                    seen.append(current)
                    if len(seen) > MAX_REDIRECTS:
                        raise FetchFailed(f"more than {MAX_REDIRECTS} redirects")
                    current = urljoin(current, location)
                    continue
                declared = response.headers.get("Content-Length")
                if declared and declared.isdigit() and int(declared) > max_bytes:
                    raise FetchFailed(f"the answer is larger than {max_bytes / 1024 / 1024:g} MB")
                chunks, size = [], 0
                # read1: whatever has arrived (a server that trickles a byte a second cannot hold a read open)
                while chunk := response.read1(64 * 1024):
                    size += len(chunk)
                    if size > max_bytes:
                        raise FetchFailed(f"the answer is larger than {max_bytes / 1024 / 1024:g} MB")
                    if time.monotonic() > deadline:
                        raise FetchFailed(f"no whole answer within {timeout:g} seconds")
                    chunks.append(chunk)
                return Response(response.status, dict(response.headers), b"".join(chunks), current, seen)
            finally:
                response.release_conn()
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            if isinstance(exc, (urllib3.exceptions.TimeoutError, socket.timeout)):
                raise FetchFailed(f"no answer within {timeout:g} seconds") from exc
            raise FetchFailed(f"the connection failed ({type(exc).__name__})") from exc
        finally:
            pool.close()
