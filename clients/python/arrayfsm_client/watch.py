"""``arrayfsm-watch``: per array, the task instances by status and the rate of each transition, live.

The view is built from transition events alone (read from the start of the topic by default):
``new → Q`` adds instances, every other transition moves them. Rates are the ids moved per
second over the last ``window`` seconds of event time (``at``).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict, deque
from datetime import datetime
from typing import Deque, Dict, Iterable, List, Optional, Tuple

from .transitions import TransitionEvent, TransitionReader

STATUS_ORDER = "QIORDEFKTUWXZ"


def _seconds(at: str) -> float:
    return datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp()


class WatchView:
    """Task-instance counts and transition rates per array, from transition events."""

    def __init__(self, window: float = 10.0) -> None:
        self.window = window
        self.counts: Dict[int, Dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.moves: Dict[int, Deque[Tuple[float, str, int]]] = defaultdict(deque)
        self.events = 0
        self.latest = 0.0

    def add(self, event: TransitionEvent) -> None:
        self.events += 1
        if event.entity != "task_instance":
            return
        counts = self.counts[event.array_id]
        if event.from_status is not None:
            counts[event.from_status] -= event.count
        counts[event.to_status] += event.count
        at = _seconds(event.at)
        self.latest = max(self.latest, at)
        self.moves[event.array_id].append((at, f"{event.from_status or 'new'}→{event.to_status}", event.count))

    def rates(self, array_id: int, now: float) -> Dict[str, float]:
        moves = self.moves[array_id]
        while moves and moves[0][0] < now - self.window:
            moves.popleft()
        totals: Dict[str, int] = defaultdict(int)
        for _, transition, count in moves:
            totals[transition] += count
        return {transition: total / self.window for transition, total in totals.items()}

    def render(self, now: Optional[float] = None) -> str:
        """The view as text; ``now`` (epoch seconds) ends the rate window (default: the latest event)."""
        now = self.latest if now is None else now
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


def watch(events: Iterable[TransitionEvent], view: WatchView, interval: float, out=sys.stdout) -> None:
    """Redraws the view every ``interval`` seconds while events come in (and once at the end)."""
    last_draw = 0.0
    for event in events:
        view.add(event)
        if time.monotonic() - last_draw >= interval:
            _draw(view, out)
            last_draw = time.monotonic()
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
    parser.add_argument("--window", type=float, default=10.0, help="seconds of event time per rate")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between redraws")
    parser.add_argument("--from-now", action="store_true", help="start at the end of the topic, not the beginning")
    parser.add_argument("--idle-exit", type=float, default=None, help="exit after this many seconds without events")
    args = parser.parse_args(argv)
    reader = TransitionReader(args.bootstrap_servers, topic=args.topic, from_beginning=not args.from_now)
    try:
        watch(reader.events(idle_timeout=args.idle_exit), WatchView(args.window), args.interval)
    except KeyboardInterrupt:
        pass
    finally:
        reader.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
