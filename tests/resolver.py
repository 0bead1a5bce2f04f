"""The tests' name resolution (DETECTOR_URL_RESOLVER, set in pyproject.toml): a few names, at once, no DNS."""

from detector.services.outbound import UrlRefused

NAMES = {
    "localhost": ["127.0.0.1"],
    "hooks.example.org": ["93.184.216.34"],  # a public address: registering is allowed, nothing ever connects
    "media.example.org": ["93.184.216.35"],
    "intranet.example.org": ["10.1.2.3"],
    "metadata.example.org": ["169.254.169.254"],
    "rebind.example.org": ["93.184.216.36", "127.0.0.1"],  # one public, one loopback: refused
}


def resolve(host: str, port: int) -> list[str]:
    try:
        return NAMES[host.lower()]
    except KeyError:
        raise UrlRefused(f"the host name {host!r} does not resolve") from None
