"""Per-request cost, key and bypass for the aiohttp adapter, and the block that sets them.

Client-agnostic: it imports no HTTP client. `throttled_http.aiohttp` re-exports
`request_options` (the public name, documented there); the rest is what its session,
middleware and trace config share: the options value, the context variable the
middleware reads for every hop, and the ticket a session lends its middleware.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, final

if TYPE_CHECKING:
    from collections.abc import Iterator

    from ._budgets import CostLike
    from ._pipeline import Ticket

__all__ = ["LENT", "OPTIONS", "Options", "checked_options", "request_options", "scope"]


@final
class Options:
    """A request's own cost, key or bypass: from its keywords or `request_options`."""

    __slots__ = ("bypass", "cost", "key")

    def __init__(self, cost: CostLike | None, key: str | None, bypass: bool) -> None:
        self.cost = cost
        self.key = key
        self.bypass = bypass

    def over(self, outer: Options | None) -> Options:
        """These options, with what they leave unnamed taken from an enclosing scope's."""
        if outer is None or self.bypass or outer.bypass:
            return self
        return Options(
            outer.cost if self.cost is None else self.cost,
            outer.key if self.key is None else self.key,
            False,
        )

    def keyed(self, scheme: str) -> str:
        """What the key stands for, as a URL: a bare host gets the hop's scheme."""
        key: str = self.key  # type: ignore[assignment]  # only called with a key
        return key if "://" in key else f"{scheme}://{key}"


# The options of the request being sent in this context (request_options, or the keywords
# of a ThrottledClientSession call), read by the middleware for every hop.
OPTIONS: ContextVar[Options | None] = ContextVar("throttled_http_options", default=None)

# The ticket a ThrottledClientSession lends to its middleware for the first hop, and the
# cost it was admitted at (so that the middleware need not weigh that hop again).
LENT: ContextVar[tuple[Ticket, CostLike] | None] = ContextVar("throttled_http_lent", default=None)


def checked_options(cost: object, key: object, bypass: object, prefix: str) -> Options | None:
    """Checked per-request options (`None` when none is named); the throttler checks cost."""
    if cost is None and key is None and bypass is False:
        return None
    if bypass is not True and bypass is not False:
        raise TypeError(f"{prefix}bypass must be True or False, got {bypass!r}")
    if key is not None and (not isinstance(key, str) or not key):
        raise TypeError(
            f"{prefix}key must be a URL or a host name such as 'api.example.com', got {key!r}"
        )
    if bypass and (cost is not None or key is not None):
        unused = f"{prefix}cost" if cost is not None else f"{prefix}key"
        raise TypeError(
            f"{prefix}bypass=True sends the request unthrottled, so {unused}= would go "
            f"unused: drop one of them"
        )
    return Options(cost, key, bypass)  # type: ignore[arg-type]  # cost: the throttler's


def request_options(
    *, cost: CostLike | None = None, key: str | None = None, bypass: bool = False
) -> AbstractContextManager[None]:
    """Weigh, re-key or exempt the requests sent inside a `with` block (any session).

    ```python
    session = aiohttp.ClientSession(middlewares=[throttle_middleware(hosts)])
    with request_options(cost=5):
        async with session.get(url) as response:  # charged 5, and so is every redirect
            ...
    with request_options(key="api.example.com"):  # charged to that host's limit
        await session.post(upload_url, data=blob)
    with request_options(bypass=True):  # not throttled at all
        await session.get(health_url)
    ```

    The way to set per-request options for a `ClientSession` built with
    [`throttle_middleware`][throttled_http.aiohttp.throttle_middleware] (or
    [`throttle_trace_config`][throttled_http.aiohttp.throttle_trace_config]): aiohttp lets
    a caller attach nothing to one request that a middleware can read (its
    `trace_request_ctx` reaches trace configs only), and a header would reach the server.
    The options live in a context variable, read by the middleware for each hop the
    block sends: the first, every redirect (charged the same cost, to the same key) and
    aiohttp's own resend. They apply to the requests the block awaits, and to tasks it
    starts (`asyncio.gather`, `create_task`), which copy the context; not to requests
    other tasks send meanwhile. A
    [`ThrottledClientSession`][throttled_http.aiohttp.ThrottledClientSession] honours
    them too; its `throttled_http_cost=`, `throttled_http_key=` and
    `throttled_http_bypass=` keywords say the same for one call.

    Blocks nest: an inner block's options replace the outer ones it names and keep the
    others; `bypass=True` exempts its requests whatever the outer block said, and an inner
    `cost=` or `key=` throttles them again inside an outer `bypass=True`.

    Args:
        cost: each hop's cost: an int >= 1, or costs per unit (`{"tokens": 420}`) for a
            throttler built with `budgets=`; checked by the throttler when it admits the
            hop. `None`: the client's `cost` callable decides, else 1.
        key: charge another key's limit: a URL, or a host name (which gets each hop's
            scheme). Ignored with a single shared throttler, which has one limit.
        bypass: `True` sends the requests without throttling them.

    Raises:
        TypeError: for a key that is not a non-empty string, a bypass that is not a bool,
            or `bypass=True` beside `cost` or `key` (which it would leave unused).
    """
    return scope(checked_options(cost, key, bypass, ""))


@contextmanager
def scope(options: Options | None) -> Iterator[None]:
    """A block in which `options` (over the enclosing block's) are the current ones."""
    current = OPTIONS.get()
    token = OPTIONS.set(current if options is None else options.over(current))
    try:
        yield
    finally:
        OPTIONS.reset(token)
