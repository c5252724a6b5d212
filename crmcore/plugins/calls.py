"""Calling hooks one implementation at a time, so one plugin's failure stays its own."""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from crmcore.errors import Veto

if TYPE_CHECKING:
    from crmcore.context import Context

log = logging.getLogger("crmcore.plugins")
trace_log = logging.getLogger("crmcore.plugins.trace")

#: recent plugin failures in this process, newest last (shown on the admin plugins page)
RECENT_FAILURES: deque[dict[str, Any]] = deque(maxlen=200)


def _impls(ctx: Context, hook_name: str) -> list[Any]:
    caller = getattr(ctx.hooks, hook_name)
    # pluggy calls the last registered implementation first; keep that order
    return [i for i in reversed(caller.get_hookimpls()) if not (i.hookwrapper or i.wrapper)]


def _invoke(ctx: Context, impl: Any, kwargs: dict[str, Any]) -> Any:
    """Call one implementation with the arguments it names; ``ctx`` is always on offer."""
    return impl.function(*[ctx if name == "ctx" else kwargs[name] for name in impl.argnames])


def _record_failure(ctx: Context, hook_name: str, plugin: str, exc: BaseException) -> None:
    RECENT_FAILURES.append({
        "business_id": ctx.business_id, "hook": hook_name, "plugin": plugin,
        "error": f"{type(exc).__name__}: {exc}", "at": time.time(),
    })
    log.error("plugin %s failed in %s for business %s: %s", plugin, hook_name, ctx.business_id, exc,
              exc_info=exc)


def _trace(ctx: Context, hook_name: str, plugin: str, started: float) -> None:
    if ctx.crm.registry.trace:
        trace_log.info("%s [%s] %.1f µs", hook_name, plugin, (time.perf_counter() - started) * 1e6)


def call_validate(ctx: Context, hook_name: str, kwargs: dict[str, Any]) -> None:
    """Call each enabled implementation; the first Veto propagates with ``plugin`` set, any
    other exception is recorded against its plugin and the next implementation runs."""
    for impl in _impls(ctx, hook_name):
        started = time.perf_counter()
        try:
            _invoke(ctx, impl, kwargs)
        except Veto as veto:
            veto.plugin = impl.plugin_name
            raise
        except Exception as exc:  # a broken plugin must not break the core's write
            _record_failure(ctx, hook_name, impl.plugin_name, exc)
        finally:
            _trace(ctx, hook_name, impl.plugin_name, started)


def call_collect(ctx: Context, hook_name: str, kwargs: dict[str, Any]) -> list[tuple[str, Any]]:
    """``(plugin, result)`` for each enabled implementation returning something, in call order;
    a failing implementation is recorded and skipped."""
    results: list[tuple[str, Any]] = []
    for impl in _impls(ctx, hook_name):
        started = time.perf_counter()
        try:
            value = _invoke(ctx, impl, kwargs)
        except Exception as exc:
            _record_failure(ctx, hook_name, impl.plugin_name, exc)
            continue
        finally:
            _trace(ctx, hook_name, impl.plugin_name, started)
        if value is not None:
            results.append((impl.plugin_name, value))
    return results
