"""A response body reader that keeps the body's tail for `reconcile=`, as the user reads.

Duck-typed, it imports no HTTP client: it wraps anything with the read methods of
aiohttp's `StreamReader` (the `response.content` of an aiohttp response), which is the one
reader `throttled_http.aiohttp` gives it.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, final

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from ._pipeline import BodyTail

__all__ = ["Reads", "StreamLike", "TailReader"]

_T = TypeVar("_T")


class StreamLike(Protocol):
    """What `TailReader` calls of the reader it wraps (aiohttp's `StreamReader`)."""

    def at_eof(self) -> bool: ...
    async def read(self, n: int = ...) -> bytes: ...
    async def readany(self) -> bytes: ...
    async def readchunk(self) -> tuple[bytes, bool]: ...
    async def readline(self, *args: Any, **kwargs: Any) -> bytes: ...
    async def readuntil(self, *args: Any, **kwargs: Any) -> bytes: ...
    async def readexactly(self, n: int) -> bytes: ...
    def read_nowait(self, n: int = ...) -> bytes: ...


@final
class Reads(Generic[_T]):
    """An async iterator over a read's results, until it returns `end`."""

    __slots__ = ("_end", "_read")

    def __init__(self, read: Callable[[], Awaitable[_T]], end: _T) -> None:
        self._read = read
        self._end = end

    def __aiter__(self) -> Reads[_T]:
        return self

    async def __anext__(self) -> _T:
        value = await self._read()
        if value == self._end:
            raise StopAsyncIteration
        return value


@final
class TailReader:
    """`response.content` for a client with `reconcile=`: the `StreamReader`, its tail kept.

    Each read returns what aiohttp's reader gave, fed to the `BodyTail` first; the read
    that leaves the reader at its end (EOF, nothing buffered) calls `done()`. A body
    released, closed or broken half-way never gets there. Every other attribute is the
    reader's own.
    """

    __slots__ = ("_reader", "_tail")

    def __init__(self, reader: StreamLike, tail: BodyTail) -> None:
        self._reader = reader
        self._tail: BodyTail | None = tail

    def _seen(self, data: bytes) -> bytes:
        tail = self._tail
        if tail is not None:
            tail.feed(data)
            if self._reader.at_eof():
                self._tail = None
                tail.done()
        return data

    async def read(self, n: int = -1) -> bytes:
        return self._seen(await self._reader.read(n))

    async def readany(self) -> bytes:
        return self._seen(await self._reader.readany())

    async def readchunk(self) -> tuple[bytes, bool]:
        data, end_of_chunk = await self._reader.readchunk()
        self._seen(data)
        return data, end_of_chunk

    async def readline(self, *args: Any, **kwargs: Any) -> bytes:
        return self._seen(await self._reader.readline(*args, **kwargs))

    async def readuntil(self, *args: Any, **kwargs: Any) -> bytes:
        return self._seen(await self._reader.readuntil(*args, **kwargs))

    async def readexactly(self, n: int) -> bytes:
        return self._seen(await self._reader.readexactly(n))

    def read_nowait(self, n: int = -1) -> bytes:
        return self._seen(self._reader.read_nowait(n))

    def __aiter__(self) -> Reads[bytes]:
        return Reads(self.readline, b"")

    def iter_chunked(self, n: int) -> Reads[bytes]:
        return Reads(partial(self.read, n), b"")

    def iter_any(self) -> Reads[bytes]:
        return Reads(self.readany, b"")

    def iter_chunks(self) -> Reads[tuple[bytes, bool]]:
        return Reads(self.readchunk, (b"", False))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reader, name)

    def __repr__(self) -> str:
        return repr(self._reader)
