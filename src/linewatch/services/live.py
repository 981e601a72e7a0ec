"""Live events to WebSocket clients. Each client has a bounded queue: when it falls behind, its oldest
events are dropped and it is told how many, so a slow client never slows inspection."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass


@dataclass(eq=False)
class Subscriber:
    queue: asyncio.Queue
    dropped: int = 0


class EventHub:
    def __init__(self, queue_size: int = 256):
        self.queue_size = queue_size
        self._subs: set[Subscriber] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def subscribe(self) -> Subscriber:
        sub = Subscriber(asyncio.Queue(self.queue_size))
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self._subs.discard(sub)

    @property
    def clients(self) -> int:
        return len(self._subs)

    def _offer(self, event: dict) -> None:
        for sub in list(self._subs):
            q = sub.queue
            while q.full():
                try:
                    q.get_nowait()
                    sub.dropped += 1
                except asyncio.QueueEmpty:
                    break
            q.put_nowait(event)

    def publish(self, event: dict) -> None:
        """Safe from any thread; never blocks."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._offer(event)
        else:
            loop.call_soon_threadsafe(self._offer, event)
