"""Progress reporting for long transfers and hashing: rich bars on stderr, or nothing (tests, --json pipes).

Sources call ``progress.task(label, total)`` and get back a callable that takes the number of bytes just
handled; ``progress.finish(handle)`` removes the bar. Counters for the build summary live here too.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

Advance = Callable[[int], None]


@dataclass
class Counters:
    fetched_bytes: int = 0
    reused_bytes: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def fetched(self, n: int) -> None:
        with self._lock:
            self.fetched_bytes += n

    def reused(self, n: int) -> None:
        with self._lock:
            self.reused_bytes += n


class Progress:
    """No-op progress; RichProgress draws bars."""

    def __init__(self) -> None:
        self.counters = Counters()

    @contextmanager
    def task(self, label: str, total: int | None = None) -> Iterator[Advance]:
        yield lambda n: None

    def note(self, message: str) -> None:
        pass

    def close(self) -> None:
        pass


class RichProgress(Progress):
    def __init__(self) -> None:
        super().__init__()
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, TextColumn, TimeRemainingColumn, TransferSpeedColumn
        from rich.progress import Progress as _P

        self._console = Console(stderr=True)
        self._bars = _P(TextColumn("{task.description}", markup=False), BarColumn(), DownloadColumn(),
                        TransferSpeedColumn(), TimeRemainingColumn(), console=self._console, transient=True)
        self._bars.start()

    @contextmanager
    def task(self, label: str, total: int | None = None) -> Iterator[Advance]:
        tid = self._bars.add_task(label, total=total)
        try:
            yield lambda n: self._bars.advance(tid, n)
        finally:
            self._bars.remove_task(tid)

    def note(self, message: str) -> None:
        self._bars.console.print(message, markup=False, highlight=False)

    def close(self) -> None:
        self._bars.stop()
