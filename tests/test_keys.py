"""Keys: host normalization, registrable domains and ``overrides`` keys."""

from __future__ import annotations

import httpx
import pytest
import yarl
from hypothesis import given, settings
from hypothesis import strategies as st

from throttled_http import InvalidURLError, host_key
from throttled_http._keys import (
    _split_with_urllib,
    domain_key,
    normalize_host,
    parse_override_key,
    split_url,
)

NORMALIZATION = [
    ("http://example.com/", "http://example.com:80", "default-port-http"),
    ("https://example.com/a/b?c=d#e", "https://example.com:443", "default-port-https"),
    ("ws://example.com/socket", "ws://example.com:80", "default-port-ws"),
    ("wss://example.com/socket", "wss://example.com:443", "default-port-wss"),
    ("http://example.com:8080/", "http://example.com:8080", "explicit-port"),
    ("https://example.com:443/", "https://example.com:443", "explicit-default-port"),
    ("HTTPS://API.Example.COM/v1", "https://api.example.com:443", "case"),
    ("http://user:secret@example.com/", "http://example.com:80", "userinfo"),
    ("http://user@example.com:81/", "http://example.com:81", "user-only"),
    ("http://example.com./", "http://example.com:80", "trailing-dot"),
    ("https://bücher.de/", "https://xn--bcher-kva.de:443", "idna"),
    ("https://BÜCHER.de/", "https://xn--bcher-kva.de:443", "idna-upper"),
    ("https://xn--bcher-kva.de/", "https://xn--bcher-kva.de:443", "punycode-given"),
    ("https://☃.net/", "https://xn--n3h.net:443", "idna2003-symbol"),
    ("http://[::1]/", "http://[::1]:80", "ipv6"),
    ("http://[0:0:0:0:0:0:0:1]:8000/", "http://[::1]:8000", "ipv6-compressed"),
    ("http://[2001:DB8::1]/", "http://[2001:db8::1]:80", "ipv6-case"),
    ("http://127.0.0.1:8080/x", "http://127.0.0.1:8080", "ipv4"),
    ("http://my_host.internal/", "http://my_host.internal:80", "underscore"),
    ("ftp://files.example.com/x", "ftp://files.example.com", "unknown-scheme-no-port"),
    ("ftp://files.example.com:21/x", "ftp://files.example.com:21", "unknown-scheme-port"),
]


@pytest.mark.parametrize(
    ("url", "key"), [(u, k) for u, k, _ in NORMALIZATION], ids=[i for _, _, i in NORMALIZATION]
)
def test_host_key_normalizes(url: str, key: str) -> None:
    """Every spelling of one server gives the same scheme://host:port key."""
    assert host_key(url) == key


def test_url_objects_key_like_strings() -> None:
    """yarl.URL and httpx.URL key exactly like the equivalent string."""
    for url in ("https://Bücher.de:443/x?y=1", "http://u:p@[::1]:81/", "HTTP://A.example.com./"):
        assert host_key(yarl.URL(url)) == host_key(url)
        assert host_key(httpx.URL(url)) == host_key(url)


def test_split_url_parts() -> None:
    """split_url gives the normalized scheme, host and port separately."""
    assert split_url("HTTPS://user@Example.COM./p") == ("https", "example.com", 443)
    assert split_url("ftp://x.example") == ("ftp", "x.example", None)


@pytest.mark.parametrize(
    "url",
    [
        "example.com/path",
        "/relative/path",
        "",
        "http:///path",
        "//example.com/",
        "http://a.example:99999/",
        "http://a.example:port/",
        "http://[zz]/",
        "http://exa mple.com/",
        "http://./",
        "mailto:someone@example.com",
    ],
    ids=[
        "no-scheme",
        "relative",
        "empty",
        "empty-host",
        "scheme-relative",
        "port-range",
        "port-text",
        "bad-ipv6",
        "space",
        "dot-only",
        "mailto",
    ],
)
def test_url_without_usable_host_raises(url: str) -> None:
    """A URL with no usable scheme, host or port raises InvalidURLError quoting it."""
    with pytest.raises(InvalidURLError) as info:
        host_key(url)
    assert repr(url) in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("host", "domain"),
    [
        ("www.bbc.co.uk", "bbc.co.uk"),
        ("news.bbc.co.uk", "bbc.co.uk"),
        ("bbc.co.uk", "bbc.co.uk"),
        ("a.b.c.example.com", "example.com"),
        ("alice.github.io", "alice.github.io"),
        ("co.uk", "co.uk"),
        ("localhost", "localhost"),
        ("127.0.0.1", "127.0.0.1"),
        ("[::1]", "[::1]"),
        ("xn--bcher-kva.de", "xn--bcher-kva.de"),
        ("shop.xn--bcher-kva.de", "xn--bcher-kva.de"),
    ],
)
def test_domain_key_uses_the_public_suffix_list(host: str, domain: str) -> None:
    """Registrable domains come from the PSL; IPs, localhost and bare suffixes stay."""
    assert domain_key(host) == domain


def test_normalize_host() -> None:
    """Bare host names normalize like URL hosts."""
    assert normalize_host("Bücher.DE.") == "xn--bcher-kva.de"
    assert normalize_host("[0::1]") == "[::1]"
    with pytest.raises(ValueError, match="invalid host"):
        normalize_host("a b")


@pytest.mark.parametrize(
    ("key", "parsed"),
    [
        ("api.github.com", ("api.github.com", None, False)),
        ("API.GitHub.com.", ("api.github.com", None, False)),
        ("*.example.org", ("example.org", None, True)),
        ("*.Example.org:8443", ("example.org", 8443, True)),
        ("localhost:8080", ("localhost", 8080, False)),
        ("127.0.0.1:8080", ("127.0.0.1", 8080, False)),
        ("[::1]:8080", ("[::1]", 8080, False)),
        ("bücher.de", ("xn--bcher-kva.de", None, False)),
    ],
)
def test_parse_override_key(key: str, parsed: tuple[str, int | None, bool]) -> None:
    """Override keys are host names or *.suffix patterns, optionally with a port."""
    assert parse_override_key(key) == parsed


@pytest.mark.parametrize(
    "key",
    ["https://api.github.com", "api.github.com/v3", "", "a.*.example.org", "*", "u@host", "a b"],
)
def test_bad_override_key_is_named(key: str) -> None:
    """A malformed override key raises ValueError quoting the key and the accepted forms."""
    with pytest.raises(ValueError, match="host name such as") as info:
        parse_override_key(key)
    assert repr(key) in str(info.value)


def test_override_key_must_be_str() -> None:
    """A non-string override key is a TypeError naming it."""
    with pytest.raises(TypeError, match=r"overrides keys must be host names.*got 42"):
        parse_override_key(42)


URL_PIECES = st.lists(
    st.sampled_from(
        [
            "http",
            "HTTPS",
            "ws",
            "x+y",
            "://",
            ":",
            "a",
            "B",
            "0",
            "9",
            "-",
            "_",
            ".",
            "..",
            "80",
            "443",
            "65536",
            "/",
            "?",
            "#",
            "@",
            "[",
            "]",
            "::1",
            "\t",
            "\n",
            " ",
            "é",
            "%41",
        ]
    ),
    max_size=12,
).map("".join)


@settings(max_examples=500, deadline=None)
@given(text=URL_PIECES | URL_PIECES.map(lambda tail: "http://" + tail))
def test_fast_path_agrees_with_urllib(text: str) -> None:
    """The regex fast path of split_url gives urlsplit's answer, or the same error."""
    try:
        expected: object = _split_with_urllib(text)
    except InvalidURLError:
        expected = InvalidURLError
    try:
        got: object = split_url(text)
    except InvalidURLError:
        got = InvalidURLError
    assert got == expected


@pytest.mark.parametrize(
    "url", ["http://127.1/", "http://2130706433/", "http://0x7f.0.0.1/", "http://0177.0.0.1/"]
)
def test_numeric_ipv4_spellings_share_the_dotted_quad_key(url: str) -> None:
    """httpx sends every spelling of 127.0.0.1 to 127.0.0.1: they share one limit."""
    assert host_key(url) == "http://127.0.0.1:80"


@pytest.mark.parametrize("url", ["http://999.1.1.1/", "http://1.2.3.4.5/", "http://a.0x/"])
def test_hosts_that_only_look_numeric_keep_their_spelling(url: str) -> None:
    """A host ending in a number that is no IPv4 address is keyed as it is written."""
    assert host_key(url) == url.rstrip("/") + ":80"


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("http://[::ffff:127.0.0.1]/", "http://127.0.0.1:80"),
        ("http://[::FFFF:7f00:1]:8080/x", "http://127.0.0.1:8080"),
        ("https://[::ffff:10.0.0.1]/", "https://10.0.0.1:443"),
    ],
)
def test_an_ipv4_mapped_ipv6_host_shares_the_ipv4_key(url: str, key: str) -> None:
    """``[::ffff:a.b.c.d]`` reaches the IPv4 server, so it is limited under the IPv4 key."""
    assert host_key(url) == key
