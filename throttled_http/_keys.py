"""Keys for per-host limits: one normalized string per server a request may reach.

Two URLs that reach the same server must get the same key, or one server would see two
limits' worth of traffic. [`host_key`][throttled_http.host_key] therefore normalizes
`scheme://host:port`:

| URL | key |
| --- | --- |
| `HTTPS://API.Example.COM/v1` | `https://api.example.com:443` |
| `http://user:secret@example.com:8080/` | `http://example.com:8080` |
| `http://example.com./` | `http://example.com:80` |
| `https://bücher.de/` | `https://xn--bcher-kva.de:443` |
| `http://[0:0::1]:8000/` | `http://[::1]:8000` |
| `wss://example.com/socket` | `wss://example.com:443` |

`domain_key` maps a host to its registrable domain with the Public Suffix List (the
`publicsuffixlist` package): `www.bbc.co.uk` and `news.bbc.co.uk` both give
`bbc.co.uk`. IP addresses, `localhost` and hosts that are themselves a public suffix
key by themselves.

Only `urllib.parse` parses URLs here: the core imports no HTTP client, and anything
whose `str()` is a URL (`yarl.URL`, `httpx.URL`) is accepted.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

import idna

from ._exceptions import InvalidURLError

if TYPE_CHECKING:
    from publicsuffixlist import PublicSuffixList

__all__ = [
    "DEFAULT_PORTS",
    "domain_key",
    "host_key",
    "is_standalone",
    "normalize_host",
    "parse_override_key",
    "split_url",
]

DEFAULT_PORTS: Final[dict[str, int]] = {"http": 80, "https": 443, "ws": 80, "wss": 443}
"""Ports made explicit in keys when a URL gives none."""

# Characters no host name may contain (after urllib.parse has split the URL): white
# space, controls and the WHATWG "forbidden host code points".
_BAD_HOST: Final = re.compile(r"[\x00-\x20\x7f#/:<>?@\[\\\]^|]")

# The common case, read without urllib.parse (3x faster): an ASCII host of letters,
# digits, dots, hyphens and underscores, no userinfo, an optional port, then the end or
# one of "/?#". Anything else takes the urlsplit path, which gives the same answer here.
_SIMPLE_URL: Final = re.compile(
    r"([A-Za-z][A-Za-z0-9+.-]*)://([A-Za-z0-9_-][A-Za-z0-9._-]*)(?::([0-9]{0,5}))?(?=[/?#]|\Z)"
)


def split_url(url: object) -> tuple[str, str, int | None]:
    """Split a URL into its normalized `(scheme, host, port)`.

    `host` is lower case, IDNA-encoded (punycode) when it is not ASCII, without a
    trailing dot, and an IPv6 literal is compressed and put in brackets. `port` is the
    explicit port, else the scheme's default (80 for http/ws, 443 for https/wss), else
    `None` for other schemes.

    >>> split_url("HTTPS://user@Example.COM./path")
    ('https', 'example.com', 443)

    Raises:
        InvalidURLError: (a ValueError) when the URL has no scheme or no host, or its host
            or port is malformed.
    """
    text = url if isinstance(url, str) else str(url)
    simple = _SIMPLE_URL.match(text)
    if simple is not None:
        scheme, host, digits = simple.groups()
        port = int(digits) if digits else None
        if port is None or port <= 65535:
            scheme = scheme.lower()
            host = host.lower()
            if host.endswith("."):
                host = host.rstrip(".")
            if host:
                if port is None:
                    port = DEFAULT_PORTS.get(scheme)
                return scheme, _canonical_ipv4(host), port
    return _split_with_urllib(text)


def _split_with_urllib(text: str) -> tuple[str, str, int | None]:
    """`split_url` for any URL, through `urllib.parse.urlsplit`."""
    try:
        parts = urlsplit(text)
        host = parts.hostname
        port = parts.port
    except ValueError as exc:
        raise InvalidURLError(f"cannot key a limit by URL {text!r}: {exc}") from None
    if host and parts.netloc.rpartition("@")[2].startswith("[") and not _is_ipv6(host):
        # Python 3.11+ checks this inside urlsplit; 3.10 accepts any text in brackets.
        raise InvalidURLError(
            f"cannot key a limit by URL {text!r}: {host!r} in brackets is not an IPv6 address"
        )
    if not host:
        raise InvalidURLError(
            f"cannot key a limit by URL {text!r}: it has no host; "
            "give an absolute URL such as 'https://example.com/path'"
        )
    scheme = parts.scheme
    if not scheme:
        raise InvalidURLError(
            f"cannot key a limit by URL {text!r}: it has no scheme; "
            "give an absolute URL such as 'https://example.com/path'"
        )
    host = _normalize(host, text)
    if port is None:
        port = DEFAULT_PORTS.get(scheme)
    return scheme, host, port


def _is_ipv6(host: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(host), ipaddress.IPv6Address)
    except ValueError:
        return False


def host_key(url: object) -> str:
    """The `scheme://host:port` key of a URL, normalized (see the module docstring).

    Examples:
        >>> host_key("http://User:pw@Example.com.:80/a?b")
        'http://example.com:80'
        >>> host_key("https://[::1]/")
        'https://[::1]:443'

    Raises:
        InvalidURLError: (a ValueError) for a URL without a scheme or a host.
    """
    scheme, host, port = split_url(url)
    return f"{scheme}://{host}" if port is None else f"{scheme}://{host}:{port}"


_psl: PublicSuffixList | None = None


def domain_key(host: str) -> str:
    """The registrable domain of a normalized host, per the Public Suffix List.

    IP literals, single-label names such as `localhost` and hosts that are themselves
    public suffixes give the host unchanged.

    >>> domain_key("news.bbc.co.uk")
    'bbc.co.uk'
    >>> domain_key("127.0.0.1")
    '127.0.0.1'
    """
    if is_standalone(host):
        return host
    global _psl
    psl = _psl
    if psl is None:
        from publicsuffixlist import PublicSuffixList  # loaded on first use

        psl = _psl = PublicSuffixList()
    domain = psl.privatesuffix(host)
    return domain if isinstance(domain, str) else host


def is_standalone(host: str) -> bool:
    """Whether a normalized host is its own domain: an IP literal or a single label.

    >>> is_standalone("127.0.0.1"), is_standalone("localhost"), is_standalone("a.example")
    (True, True, False)
    """
    return host.startswith("[") or "." not in host or _is_ipv4(host)


def normalize_host(name: str) -> str:
    """Normalize a bare host name the way `split_url` normalizes URL hosts.

    >>> normalize_host("Bücher.DE.")
    'xn--bcher-kva.de'

    Raises:
        ValueError: when `name` is not a valid host name.
    """
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    return _normalize(name.lower(), name)


def parse_override_key(key: object) -> tuple[str, int | None, bool]:
    """Read an `overrides` key: `(host or suffix, port or None, is_pattern)`.

    Accepted forms: `"api.example.com"`, `"*.example.org"` (every subdomain of
    `example.org`, not `example.org` itself), either with `":port"`, and IP
    literals (`"127.0.0.1:8080"`, `"[::1]:8080"`).

    >>> parse_override_key("*.Example.org:8443")
    ('example.org', 8443, True)

    Raises:
        TypeError, ValueError: naming the offending key.
    """
    if not isinstance(key, str):
        raise TypeError(
            f"overrides keys must be host names such as 'api.example.com', "
            f"'*.example.org' or 'localhost:8080', got {key!r}"
        )
    form = (
        f"overrides key {key!r} must be a host name such as 'api.example.com', "
        "'*.example.org' or 'localhost:8080', without a scheme or path"
    )
    text = key.strip()
    if "://" in text or "/" in text or not text:
        raise ValueError(form)
    try:
        parts = urlsplit("http://" + text)
        host = parts.hostname
        port = parts.port
    except ValueError:
        raise ValueError(form) from None
    if not host or parts.username is not None:
        raise ValueError(form)
    pattern = host.startswith("*.")
    if pattern:
        host = host[2:]
    if "*" in host:
        raise ValueError(f"{form}; '*' may only start a pattern ('*.example.org')")
    try:
        host = _normalize(host, key)
    except InvalidURLError:
        raise ValueError(form) from None
    return host, port, pattern


# -- internals -----------------------------------------------------------------------


def _normalize(host: str, text: str) -> str:
    """Lower-cased `host` (from urlsplit) -> key form; `text` is quoted in errors."""
    if ":" in host:  # an IPv6 literal; urlsplit removed the brackets
        address, sep, zone = host.partition("%")
        try:
            packed = ipaddress.IPv6Address(address)
        except ValueError:
            raise InvalidURLError(f"invalid IPv6 host {host!r} in {text!r}") from None
        mapped = packed.ipv4_mapped
        if mapped is not None and not zone:
            return str(mapped)  # ::ffff:a.b.c.d reaches the IPv4 server: one key for both
        return f"[{packed.compressed}{sep}{zone}]"
    if host.endswith("."):
        host = host.rstrip(".")
    if host.isascii():
        if not host or _BAD_HOST.search(host):
            raise InvalidURLError(f"invalid host {host!r} in {text!r}")
        return _canonical_ipv4(host)
    try:
        encoded = idna.encode(host, uts46=True).decode("ascii")
    except idna.IDNAError:
        try:  # IDNA 2003 accepts some names IDNA 2008 refuses (symbols); browsers too
            encoded = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise InvalidURLError(f"invalid international host {host!r} in {text!r}") from None
    if _BAD_HOST.search(encoded):
        raise InvalidURLError(f"invalid host {host!r} in {text!r}")
    return encoded.lower()


_HEX_LABEL: Final = re.compile(r"0x[0-9a-f]*\Z")


def _canonical_ipv4(host: str) -> str:
    """The dotted quad of an IPv4 host however it is spelt, else `host` unchanged.

    `127.1`, `2130706433` and `0x7f.0.0.1` all name 127.0.0.1, and httpx sends them
    there: they must share its key. As in the WHATWG URL standard, a lower-case host whose
    last label is a number (decimal, or hex with `0x`) is read as IPv4; one that is not a
    valid address stays as it is.
    """
    last = host.rpartition(".")[2]
    if not (last.isdigit() or _HEX_LABEL.match(last)):
        return host
    try:
        return socket.inet_ntoa(socket.inet_aton(host))
    except OSError:
        return host


def _is_ipv4(host: str) -> bool:
    last = host.rpartition(".")[2]
    return last.isdigit()
