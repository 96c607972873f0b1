"""The public surface: one sorted ``__all__``, every name real, public reprs."""

from __future__ import annotations

import doctest
import importlib
import inspect
from typing import Any

import throttled_http


def test_all_is_sorted_and_unique() -> None:
    """__all__ lists each name once, in plain sorted() order."""
    names = throttled_http.__all__
    assert len(names) == len(set(names))
    assert names == sorted(names)


def test_every_name_is_importable() -> None:
    """Every name in __all__ exists, and star-import brings exactly those."""
    for name in throttled_http.__all__:
        assert hasattr(throttled_http, name), name
    namespace: dict[str, object] = {}
    exec("from throttled_http import *", namespace)
    namespace.pop("__builtins__")
    assert set(namespace) == set(throttled_http.__all__)


def test_public_classes_report_the_package_module() -> None:
    """Public classes say throttled_http.X, not the private module they live in."""
    for name in throttled_http.__all__:
        obj = getattr(throttled_http, name)
        if inspect.isclass(obj):
            assert obj.__module__ == "throttled_http", name


def test_no_public_name_left_out() -> None:
    """Every public class defined in a private core module is exported."""
    exported = set(throttled_http.__all__)
    for module_name in ("_throttler", "_rates", "_exceptions", "_protocols"):
        module = importlib.import_module(f"throttled_http.{module_name}")
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name)
            if inspect.isclass(obj):
                assert name in exported, f"{module_name}.{name}"


def test_version() -> None:
    """__version__ is a non-empty string."""
    assert isinstance(throttled_http.__version__, str)
    assert throttled_http.__version__


def test_exception_tree() -> None:
    """Errors mix in the builtins users already catch."""
    assert issubclass(throttled_http.ThrottlerTimeoutError, TimeoutError)
    assert issubclass(throttled_http.InvalidRateError, ValueError)
    assert issubclass(throttled_http.InvalidURLError, ValueError)
    for name in (
        "ThrottlerTimeoutError",
        "ThrottlerBackendError",
        "InvalidRateError",
        "InvalidURLError",
    ):
        assert issubclass(getattr(throttled_http, name), throttled_http.ThrottledHTTPError)


async def test_throttler_satisfies_the_throttler_protocol() -> None:
    """The in-memory Throttler is a ThrottlerLike; its Entry is an EntryLike."""
    throttler = throttled_http.Throttler(10, 1.0)
    assert isinstance(throttler, throttled_http.ThrottlerLike)
    entry = await throttler.open_entry()
    assert isinstance(entry, throttled_http.EntryLike)
    entry.close()


def test_sync_throttler_satisfies_the_sync_throttler_protocol() -> None:
    """The thread-safe SyncThrottler is a SyncThrottlerLike; its entry is an EntryLike."""
    throttler = throttled_http.SyncThrottler(10, 1.0)
    assert isinstance(throttler, throttled_http.SyncThrottlerLike)
    entry = throttler.open_entry()
    assert isinstance(entry, throttled_http.EntryLike)
    entry.close()
    assert entry.closed


def test_names_of_0_2() -> None:
    """0.2 exports ThrottlerLike, SyncThrottlerLike and SyncThrottlerMap; the old names are gone."""
    exported = set(throttled_http.__all__)
    assert {"ThrottlerLike", "SyncThrottlerLike", "SyncThrottlerMap"} <= exported
    for removed in ("AsyncLimiter", "resolve_limiter"):
        assert removed not in exported
        assert not hasattr(throttled_http, removed), removed


def test_docstring_examples_run() -> None:
    """The doctest examples in the core's public docstrings are true.

    pytest's doctest collection skips them: their objects report ``throttled_http`` as
    their module, not the private module that defines them.
    """
    finder = doctest.DocTestFinder(recurse=False)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    globs = {name: getattr(throttled_http, name) for name in throttled_http.__all__}
    objects: list[Any] = [
        throttled_http.Rate,
        throttled_http.Rate.parse,
        throttled_http.Rate.parse_many,
        throttled_http.parse_rates,
        throttled_http.Throttler.from_rates,
        throttled_http.ThrottlerMap,
        throttled_http.host_key,
    ]
    attempted = 0
    for obj in objects:
        for test in finder.find(obj, obj.__qualname__, globs=dict(globs)):
            result = runner.run(test)
            assert result.failed == 0, test.name
            attempted += result.attempted
    assert attempted >= 11
