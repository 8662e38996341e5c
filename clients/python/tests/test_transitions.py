"""The transition reader's dedupe, reassembly and order, and the watch view, on known events;
then the reader on what a real serve published."""

import io
from datetime import datetime

from arrayfsm_client import ArrayFSMClient, TransitionAssembler, TransitionReader, assemble
from arrayfsm_client.watch import WatchView, watch

from stack import make_array


def event(event_id, array_id, entity, from_status, to_status, ids, at="2026-12-07T10:00:00.000Z", part=None, parts=None,
          command_id="c1", batch_number=1):
    e = {"event_id": event_id, "command_id": command_id, "array_id": array_id, "batch_number": batch_number,
         "entity": entity, "from": from_status, "to": to_status, "ids": ids, "count": len(ids), "at": at}
    if part:
        e.update(part=part, parts=parts)
    return e


def epoch(at):
    return datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp()


class Clock:
    """Test code: a clock that moves only when told."""

    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now


def test_copies_are_dropped_and_parts_come_back_whole_in_order_per_array():
    assembler = TransitionAssembler()
    out = []
    out += assembler.add(event("c1:t0:p1", 7, "task_instance", None, "Q", [1, 2], part=1, parts=2))
    # Array 7's next event waits behind the incomplete one; array 8's goes on.
    out += assembler.add(event("c2:t0", 7, "task_instance", "Q", "I", [1], command_id="c2"))
    out += assembler.add(event("c3:t0", 8, "task", "Q", "I", [50], command_id="c3"))
    assert [e.event_id for e in out] == ["c3:t0"]
    out += assembler.add(event("c1:t0:p1", 7, "task_instance", None, "Q", [1, 2], part=1, parts=2))  # a copy
    out += assembler.add(event("c1:t0:p2", 7, "task_instance", None, "Q", [3], part=2, parts=2))
    out += assembler.add(event("c2:t0", 7, "task_instance", "Q", "I", [1], command_id="c2"))  # a re-published copy
    assert [(e.event_id, e.ids) for e in out] == [("c3:t0", [50]), ("c1:t0", [1, 2, 3]), ("c2:t0", [1])]
    assert out[1].from_status is None and out[1].count == 3


def test_the_watch_view_renders_counts_and_rates():
    events = [
        event("a", 7, "task_instance", None, "Q", [1, 2, 3, 4], at="2026-12-07T10:00:00.000Z"),
        event("b", 7, "task", "Q", "I", [10, 11], at="2026-12-07T10:00:01.000Z"),
        event("c", 7, "task_instance", "Q", "I", [1, 2], at="2026-12-07T10:00:01.000Z"),
        event("d", 7, "task_instance", "I", "O", [1], at="2026-12-07T10:00:09.000Z"),
        event("e", 9, "task_instance", None, "Q", [20], at="2026-12-07T10:00:09.500Z"),
        event("c", 7, "task_instance", "Q", "I", [1, 2], at="2026-12-07T10:00:01.000Z"),  # a copy
    ]
    view = WatchView(window=10, clock=Clock(epoch("2026-12-07T10:00:09.500Z")))
    for whole in assemble(events):
        view.add(whole)
    assert view.render() == "\n".join([
        "arrayfsm-watch: 2 arrays, 5 transition events; rates over the last 10 s",
        "array 7: Q 2  I 1  O 1",
        "  per s: I→O 0.1  Q→I 0.2  new→Q 0.4",
        "array 9: Q 1",
        "  per s: new→Q 0.1",
    ])


def test_the_watch_views_rates_slide_with_the_clock_and_fall_to_0_without_events():
    clock = Clock(epoch("2026-12-07T10:00:00.000Z"))
    view = WatchView(window=10, clock=clock)
    for whole in assemble([
        event("a", 7, "task_instance", None, "Q", list(range(1, 21)), at="2026-12-07T10:00:00.000Z"),
        event("b", 7, "task_instance", "Q", "I", list(range(1, 11)), at="2026-12-07T10:00:04.000Z"),
    ]):
        view.add(whole)
    clock.now += 5
    assert view.rates(7) == {"new→Q": 2.0, "Q→I": 1.0}
    clock.now += 5.5  # new → Q has left the window
    assert view.rates(7) == {"Q→I": 1.0}
    clock.now += 10  # nothing for a whole window
    assert view.rates(7) == {}
    assert view.render() == "\n".join([
        "arrayfsm-watch: 1 arrays, 2 transition events; rates over the last 10 s",
        "array 7: Q 10  I 10",
    ])


def test_watch_redraws_on_its_interval_without_events():
    view_clock = Clock(epoch("2026-12-07T10:00:00.000Z"))
    view = WatchView(window=10, clock=view_clock)
    [moved] = assemble([event("a", 7, "task_instance", None, "Q", [1, 2, 3], at="2026-12-07T10:00:00.000Z")])
    draw_clock = Clock(0.0)
    frames = []

    class Screen(io.StringIO):
        def write(self, text):
            frames.append(text)

    def polls():
        yield [moved]
        for _ in range(12):  # three seconds of empty polls, the view's clock moving with them
            draw_clock.now += 0.25
            view_clock.now += 0.25
            yield []
        view_clock.now += 10

    watch(polls(), view, interval=1.0, out=Screen(), clock=draw_clock)
    assert len(frames) == 5  # at once, after 1, 2 and 3 s with no event, at the end
    assert "new→Q 0.3" in frames[0] and "new→Q 0.3" in frames[3]
    assert "per s" not in frames[4]


def test_the_reader_yields_each_event_of_a_real_serve_once(stack):
    array = make_array(stack, 40)
    with ArrayFSMClient(stack.bootstrap_servers) as client:
        recorded = client.record_array_batch_num(array_id=array["array_id"], task_ids=array["task_ids"],
                                                 task_resources_id=1, workflow_run_id=1)
        client.instantiate_array_batch(array_id=array["array_id"], batch_number=1)
    with TransitionReader(stack.bootstrap_servers) as reader:
        mine = [e for e in reader.events(idle_timeout=5) if e.array_id == array["array_id"]]
    assert [(e.entity, e.from_status, e.to_status, e.count) for e in mine] == [
        ("task", "G", "Q", 40), ("task_instance", None, "Q", 40), ("task", "Q", "I", 40), ("task_instance", "Q", "I", 40)]
    assert len({e.event_id for e in mine}) == 4
    assert sorted(mine[1].ids) == sorted(recorded.batches[0].task_instance_ids)
