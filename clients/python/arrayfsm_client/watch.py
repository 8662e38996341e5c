"""``arrayfsm-watch``: per array, the task instances by status and the rate of each transition, live.

The view is built from transition events alone (read from the start of the topic by default):
``new → Q`` adds instances, every other transition moves them. Rates are the ids moved per
second by the events whose time (``at``) lies in the last ``window`` seconds up to now, so they
fall to 0 once nothing has moved for a window (and are 0 for events older than that, such as a
replayed topic's). The view is redrawn every ``interval`` seconds, events or not.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict, deque
from datetime import datetime
from typing import Callable, Deque, Dict, Iterable, List, Optional, Tuple

from .transitions import TransitionEvent, TransitionReader

STATUS_ORDER = "QIORDEFKTUWXZ"


def _seconds(at: str) -> float:
    return datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp()


class WatchView:
    """Task-instance counts and transition rates per array, from transition events.

    :param window: seconds each rate is taken over.
    :param clock: now, in epoch seconds (the events' ``at`` are compared with it).
    """

    def __init__(self, window: float = 10.0, clock: Callable[[], float] = time.time) -> None:
        self.window = window
        self.clock = clock
        self.counts: Dict[int, Dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.moves: Dict[int, Deque[Tuple[float, str, int]]] = defaultdict(deque)
        self.events = 0

    def add(self, event: TransitionEvent) -> None:
        self.events += 1
        if event.entity != "task_instance":
            return
        counts = self.counts[event.array_id]
        if event.from_status is not None:
            counts[event.from_status] -= event.count
        counts[event.to_status] += event.count
        self.moves[event.array_id].append((_seconds(event.at), f"{event.from_status or 'new'}→{event.to_status}",
                                           event.count))

    def rates(self, array_id: int, now: Optional[float] = None) -> Dict[str, float]:
        """Ids moved per second, by transition, over the window ending at ``now`` (default: the
        clock's); a transition with no move in the window is left out (its rate is 0)."""
        now = self.clock() if now is None else now
        start = now - self.window
        moves = self.moves[array_id]
        while moves and moves[0][0] < start:
            moves.popleft()
        totals: Dict[str, int] = defaultdict(int)
        for at, transition, count in moves:
            if at >= start:  # an array's events are in commit order, their times nearly so
                totals[transition] += count
        return {transition: total / self.window for transition, total in totals.items()}

    def render(self, now: Optional[float] = None) -> str:
        """The view as text; ``now`` (epoch seconds) ends the rate window (default: the clock's)."""
        now = self.clock() if now is None else now
        lines = [f"arrayfsm-watch: {len(self.counts)} arrays, {self.events} transition events; "
                 f"rates over the last {self.window:g} s"]
        for array_id in sorted(self.counts):
            counts = self.counts[array_id]
            by_status = "  ".join(f"{s} {counts[s]}" for s in STATUS_ORDER if counts.get(s))
            lines.append(f"array {array_id}: {by_status or 'no task instances'}")
            rates = self.rates(array_id, now)
            if rates:
                lines.append("  per s: " + "  ".join(f"{t} {r:.1f}" for t, r in sorted(rates.items())))
        return "\n".join(lines)


def watch(polls: Iterable[List[TransitionEvent]], view: WatchView, interval: float, out=sys.stdout,
          clock: Callable[[], float] = time.monotonic) -> None:
    """Draws the view at once, then every ``interval`` seconds whether events come or not, and
    once at the end. ``polls`` yields the events that arrived since the last (an empty list when
    none did), often enough for the redraws: ``TransitionReader.polls``, at least every 0.1 s."""
    last_draw: Optional[float] = None
    for events in polls:
        for event in events:
            view.add(event)
        if last_draw is None or clock() - last_draw >= interval:
            _draw(view, out)
            last_draw = clock()
    _draw(view, out)


def _draw(view: WatchView, out) -> None:
    if out.isatty():
        out.write("\x1b[H\x1b[2J")
    out.write(view.render() + "\n")
    out.flush()


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="arrayfsm-watch", description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap-servers", default="127.0.0.1:9092")
    parser.add_argument("--topic", default="arrayfsm.transitions")
    parser.add_argument("--window", type=float, default=10.0, help="seconds up to now per rate")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between redraws")
    parser.add_argument("--from-now", action="store_true", help="start at the end of the topic, not the beginning")
    parser.add_argument("--idle-exit", type=float, default=None, help="exit after this many seconds without events")
    args = parser.parse_args(argv)
    reader = TransitionReader(args.bootstrap_servers, topic=args.topic, from_beginning=not args.from_now)
    try:
        watch(reader.polls(idle_timeout=args.idle_exit), WatchView(args.window), args.interval)
    except KeyboardInterrupt:
        pass
    finally:
        reader.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
