"""Prefetch batches in a background thread while the training step runs.

An accelerator step (or the sleep that simulates one) leaves the CPU idle; a thread that builds
the next batches meanwhile (augment, re-tokenize, collate — or, with DataLoader workers, receive
and unpickle their batches) turns the loop's wait for data into a queue pop. Order is kept, so
training stays deterministic; an exception in the thread is raised in the consumer.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Any

_DONE = object()


class Prefetcher:
    def __init__(self, source: Iterable[Any], depth: int = 2) -> None:
        self.source = source
        self.depth = max(1, depth)

    def __iter__(self) -> Iterator[Any]:
        q: queue.Queue[Any] = queue.Queue(maxsize=self.depth)
        stop = threading.Event()

        def produce() -> None:
            try:
                for item in self.source:
                    while not stop.is_set():
                        try:
                            q.put(item, timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return
                q.put(_DONE)
            except BaseException as exc:  # handed to the consumer, raised there
                q.put(exc)

        thread = threading.Thread(target=produce, name="cea-prefetch", daemon=True)
        thread.start()
        try:
            while True:
                item = q.get()
                if item is _DONE:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            while thread.is_alive():  # unblock a producer waiting on a full queue
                try:
                    q.get_nowait()
                except queue.Empty:
                    thread.join(timeout=0.05)
