"""Transition events for analytics: deduplicated, reassembled, in order per array.

serve publishes every event at least once (a crash between publishing and deleting its outbox
row publishes it again, with the same ``event_id``), splits events with many ids into parts,
and keeps one array's events in commit order (they share a key, hence a partition).
``TransitionAssembler`` turns that stream into each event exactly once, whole, per array in
order; ``TransitionReader`` feeds it from Kafka.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any, Deque, Dict, Iterable, Iterator, List, Mapping, Optional

from confluent_kafka import Consumer


@dataclass(frozen=True)
class TransitionEvent:
    """One (entity, from, to) group of rows one command moved; ``from_status`` is None for rows
    the command created."""

    event_id: str
    command_id: str
    array_id: int
    batch_number: Optional[int]
    entity: str
    from_status: Optional[str]
    to_status: str
    ids: List[int]
    at: str

    @property
    def count(self) -> int:
        return len(self.ids)


class TransitionAssembler:
    """Feed it decoded events as they arrive; it returns the whole events now complete.

    An event whose parts have not all arrived holds back its array's later events (their order
    is the array's commit order); other arrays' events go on. Event ids are remembered up to
    ``dedupe_window`` (oldest forgotten first): keep it above the copies' possible distance.
    """

    def __init__(self, dedupe_window: int = 1_000_000) -> None:
        self._seen: "OrderedDict[str, None]" = OrderedDict()
        self._window = dedupe_window
        self._pending: Dict[int, Deque[Dict[str, Any]]] = {}

    def add(self, event: Mapping[str, Any]) -> List[TransitionEvent]:
        event_id = event["event_id"]
        if event_id in self._seen:
            return []
        self._seen[event_id] = None
        if len(self._seen) > self._window:
            self._seen.popitem(last=False)
        array_id = event["array_id"]
        queue = self._pending.setdefault(array_id, deque())
        parts = event.get("parts")
        base = event_id.rsplit(":p", 1)[0] if parts else event_id
        entry = next((e for e in queue if e["base"] == base), None)
        if entry is None:
            entry = {"base": base, "parts": {}, "expected": parts or 1}
            queue.append(entry)
        entry["parts"][event.get("part", 1)] = event
        complete: List[TransitionEvent] = []
        while queue and len(queue[0]["parts"]) >= queue[0]["expected"]:
            complete.append(self._whole(queue.popleft()))
        if not queue:
            del self._pending[array_id]
        return complete

    @staticmethod
    def _whole(entry: Mapping[str, Any]) -> TransitionEvent:
        parts = [entry["parts"][n] for n in sorted(entry["parts"])]
        first = parts[0]
        return TransitionEvent(
            event_id=entry["base"], command_id=first["command_id"], array_id=first["array_id"],
            batch_number=first.get("batch_number"), entity=first["entity"], from_status=first.get("from"),
            to_status=first["to"], ids=[i for part in parts for i in part["ids"]], at=first["at"])


def assemble(events: Iterable[Mapping[str, Any]]) -> Iterator[TransitionEvent]:
    """Whole, deduplicated events from decoded ones (e.g. the payloads of a topic dump)."""
    assembler = TransitionAssembler()
    for event in events:
        yield from assembler.add(event)


class TransitionReader:
    """Reads ``arrayfsm.transitions`` with a consumer group of its own (or the one given, to share
    the work and resume where the group left off)."""

    def __init__(self, bootstrap_servers: str, *, topic: str = "arrayfsm.transitions",
                 group_id: Optional[str] = None, from_beginning: bool = True,
                 kafka_config: Optional[Mapping[str, Any]] = None) -> None:
        self._consumer = Consumer({
            "bootstrap.servers": bootstrap_servers, "group.id": group_id or f"arrayfsm-reader-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest" if from_beginning else "latest", **(kafka_config or {})})
        self._consumer.subscribe([topic])
        self._assembler = TransitionAssembler()

    def events(self, idle_timeout: Optional[float] = None) -> Iterator[TransitionEvent]:
        """Yields events as they complete; with ``idle_timeout``, returns after that many seconds
        without a message."""
        for completed in self.polls(idle_timeout):
            yield from completed

    def polls(self, idle_timeout: Optional[float] = None) -> Iterator[List[TransitionEvent]]:
        """Yields, after every poll of at most 0.1 s, the events it completed (often none), so a
        caller wakes up whether or not events come; ``idle_timeout`` as for ``events``."""
        last = time.monotonic()
        while True:
            message = self._consumer.poll(0.1)
            if message is None or message.error() is not None:
                if idle_timeout is not None and time.monotonic() - last > idle_timeout:
                    return
                yield []
                continue
            last = time.monotonic()
            try:
                event = json.loads(message.value())
            except (TypeError, ValueError):
                yield []
                continue
            yield self._assembler.add(event)

    def close(self) -> None:
        self._consumer.close()

    def __enter__(self) -> "TransitionReader":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
