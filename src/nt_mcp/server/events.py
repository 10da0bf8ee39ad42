"""Resumable streamable-HTTP streams: the event store behind SSE priming events and ``Last-Event-ID``.

With an event store the SDK opens every POST's SSE stream with a priming event (an id, empty data
and ``retry: RETRY_MS``) and numbers every message; a client that loses the stream reconnects with
GET and ``Last-Event-ID`` after ``retry`` ms and receives what it missed (MCP 2025-11-25, SEP-1699).

Events live in process memory: a streamable-HTTP session lives in one process anyway (its session id
routes to that process). The store is bounded: at most `MAX_EVENTS` events, none older than
`MAX_AGE_S`; a reconnect later than that finds nothing to replay, as after a restart.
"""

from __future__ import annotations

import itertools
import time
from collections import OrderedDict
from dataclasses import dataclass

from mcp.server.streamable_http import EventCallback, EventId, EventMessage, EventStore, StreamId
from mcp_types import JSONRPCMessage

RETRY_MS = 1000
MAX_EVENTS = 2000
MAX_AGE_S = 300.0


@dataclass(frozen=True)
class _Event:
    stream_id: StreamId
    message: JSONRPCMessage | None  # None: a priming event
    stored_at: float


class MemoryEventStore(EventStore):
    """Events in insertion order, by id; ids are ``<sequence>`` strings, unique in this process."""

    def __init__(self, max_events: int = MAX_EVENTS, max_age_s: float = MAX_AGE_S) -> None:
        self.max_events = max_events
        self.max_age_s = max_age_s
        self._events: OrderedDict[EventId, _Event] = OrderedDict()
        self._sequence = itertools.count(1)

    async def store_event(self, stream_id: StreamId, message: JSONRPCMessage | None) -> EventId:
        self._evict(time.monotonic())
        event_id = str(next(self._sequence))
        self._events[event_id] = _Event(stream_id, message, time.monotonic())
        return event_id

    async def replay_events_after(self, last_event_id: EventId, send_callback: EventCallback) -> StreamId | None:
        """Send the messages of ``last_event_id``'s stream stored after it; that stream's id, or None
        when the id is unknown (evicted, or never ours)."""
        self._evict(time.monotonic())
        last = self._events.get(last_event_id)
        if last is None:
            return None
        after = False
        for event_id, event in list(self._events.items()):
            if after and event.stream_id == last.stream_id and event.message is not None:
                await send_callback(EventMessage(event.message, event_id))
            after = after or event_id == last_event_id
        return last.stream_id

    def _evict(self, now: float) -> None:
        while self._events:
            oldest = next(iter(self._events.values()))
            if len(self._events) < self.max_events and now - oldest.stored_at <= self.max_age_s:
                return
            self._events.popitem(last=False)
