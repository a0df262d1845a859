"""Calls run side by side under one deadline, for reads that must never hang a command (`medai certs`' sources,
`medai status`' probes): each call's value, its exception, or TIMEOUT when it had not returned by then (its
daemon thread is left behind and dies with the process)."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from installer.core.errors import MedaiError

TIMEOUT = object()


def run_within(calls: list[Callable[[], Any]], timeout_s: float) -> list[Any]:
    """One result per call, in order: the value returned, the Exception raised, or TIMEOUT."""
    results: dict[int, Any] = {}

    def run(i: int, fn: Callable[[], Any]) -> None:
        try:
            results[i] = fn()
        except Exception as e:  # noqa: BLE001 handed to the caller, which makes it one line
            results[i] = e

    threads = [threading.Thread(target=run, args=(i, fn), daemon=True) for i, fn in enumerate(calls)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout_s
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    return [results[i] if i in results else TIMEOUT for i in range(len(calls))]


def first_line(e: BaseException) -> str:
    """medai's own errors are already one line for people; another exception is named by its type."""
    text = str(e).strip()
    first = text.splitlines()[0][:300] if text else ""
    if isinstance(e, MedaiError):
        return first or type(e).__name__
    return f"{type(e).__name__}: {first}" if first else type(e).__name__
