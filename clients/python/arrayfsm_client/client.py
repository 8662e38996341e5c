"""Request/reply over Kafka: send a command, get its result.

A client has a private reply topic, ``<reply prefix><client id>`` (created if missing), and
names it in every command's ``reply_to``, so it reads only its own answers. One background
thread reads that topic, resolves the waiting calls (putting split results back together),
re-sends calls whose attempt timed out — the same bytes with the same ``command_id``, which
serve answers with the original result and never applies twice — and fails the calls whose
deadline passed with ``CommandTimeout``.

``ArrayFSMClient`` has one method per command type, named as the type, with the payload's
fields as keyword arguments; each blocks for its typed result. ``send(type, **fields)``
returns a ``concurrent.futures.Future`` at once, for pipelining. ``AsyncArrayFSMClient`` has the
same methods as coroutines.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import threading
import time
import uuid
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Dict, List, Mapping, Optional

from confluent_kafka import OFFSET_END, Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from .commands import COMMANDS
from .errors import CommandRejected, CommandTimeout
from .results import RESULT_TYPES, merge_parts

DEFAULT_COMMANDS_TOPIC = "arrayfsm.commands"
DEFAULT_REPLY_PREFIX = "arrayfsm.replies."


@dataclass
class _Call:
    command_id: str
    type: str
    key: bytes
    value: bytes
    future: Future
    started: float
    deadline: float
    attempts: int = 0
    next_send: float = 0.0
    parts: Dict[int, Mapping[str, Any]] = field(default_factory=dict)


class ArrayFSMClient:
    """A scheduler's connection to arrayfsm (thread-safe).

    :param bootstrap_servers: the Kafka cluster serve reads from.
    :param attempt_timeout: seconds to wait for an answer before sending the command again.
    :param deadline: seconds after which a call gives up with ``CommandTimeout``.
    :param client_id: names the reply topic (default: a random id, so each client has its own).
    :param kafka_config: extra librdkafka properties for the producer, consumer and admin client.
    """

    def __init__(self, bootstrap_servers: str, *, commands_topic: str = DEFAULT_COMMANDS_TOPIC,
                 reply_prefix: str = DEFAULT_REPLY_PREFIX, client_id: Optional[str] = None,
                 attempt_timeout: float = 5.0, deadline: float = 60.0,
                 kafka_config: Optional[Mapping[str, Any]] = None) -> None:
        self.commands_topic = commands_topic
        self.reply_topic = reply_prefix + (client_id or uuid.uuid4().hex)
        self.attempt_timeout = attempt_timeout
        self.deadline = deadline
        common = {"bootstrap.servers": bootstrap_servers, **(kafka_config or {})}
        # Request/reply latency: no lingering for batches, fetches answered as soon as data is there.
        self._producer = Producer({"enable.idempotence": True, "linger.ms": 0, **common})
        self._create_reply_topic(common)
        self._consumer = Consumer({
            "group.id": f"arrayfsm-client-{self.reply_topic}", "enable.auto.commit": False,
            "fetch.wait.max.ms": 10, "enable.partition.eof": False, **common})
        self._assign_from_end()
        self._calls: Dict[str, _Call] = {}
        self._timers: List[tuple] = []  # (when, command_id)
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"arrayfsm-client {self.reply_topic}", daemon=True)
        self._thread.start()

    # Commands, one method each (docs/contract.md). Each returns the command's typed result or
    # raises CommandRejected / CommandTimeout.
    def add_array(self, *, workflow_id, task_template_version_id, name, max_concurrently_running=None, **kw):
        return self.call("add_array", workflow_id=workflow_id, task_template_version_id=task_template_version_id,
                         name=name, max_concurrently_running=max_concurrently_running, **kw)

    def record_array_batch_num(self, *, array_id, task_ids, task_resources_id, workflow_run_id, **kw):
        return self.call("record_array_batch_num", array_id=array_id, task_ids=task_ids,
                         task_resources_id=task_resources_id, workflow_run_id=workflow_run_id, **kw)

    def instantiate_array_batch(self, *, array_id, batch_number, **kw):
        return self.call("instantiate_array_batch", array_id=array_id, batch_number=batch_number, **kw)

    def instantiate_task_instances(self, *, task_instance_ids, **kw):
        return self.call("instantiate_task_instances", task_instance_ids=task_instance_ids, **kw)

    def transition_array_to_launched(self, *, array_id, batch_number, next_report_increment, **kw):
        return self.call("transition_array_to_launched", array_id=array_id, batch_number=batch_number,
                         next_report_increment=next_report_increment, **kw)

    def log_array_submit_failed(self, *, array_id, batch_number, **kw):
        return self.call("log_array_submit_failed", array_id=array_id, batch_number=batch_number, **kw)

    def log_array_distributor_id(self, *, array_id, distributor_ids=None, **kw):
        return self.call("log_array_distributor_id", array_id=array_id, distributor_ids=distributor_ids, **kw)

    def transition_to_killed(self, *, array_id, batch_number, **kw):
        return self.call("transition_to_killed", array_id=array_id, batch_number=batch_number, **kw)

    def get_array_max_concurrently_running(self, *, array_id=None, workflow_id=None, task_template_version_id=None, **kw):
        return self.call("get_array_max_concurrently_running", array_id=array_id, workflow_id=workflow_id,
                         task_template_version_id=task_template_version_id, **kw)

    def call(self, command_type: str, *, command_id: Optional[str] = None, key: Optional[str] = None,
             deadline: Optional[float] = None, **fields: Any):
        """Sends a command and waits for its result (see ``send``)."""
        return self.send(command_type, command_id=command_id, key=key, deadline=deadline, **fields).result()

    def send(self, command_type: str, *, command_id: Optional[str] = None, key: Optional[str] = None,
             deadline: Optional[float] = None, **fields: Any) -> Future:
        """Sends a command now; the future resolves to its typed result.

        :param command_id: the command's id (default: a new UUID). A call with the id of an
            earlier identical command gets that command's answer again.
        :param key: the message key (default: the contract's key for the type).
        :param deadline: seconds until ``CommandTimeout`` (default: the client's).
        """
        spec = COMMANDS.get(command_type)
        if spec is None:
            raise ValueError(f"unknown command type {command_type!r}; one of {', '.join(COMMANDS)}")
        if self._closed.is_set():
            raise RuntimeError("the client is closed")
        payload = spec.payload(fields)
        command_id = command_id or uuid.uuid4().hex
        # Encoded once: every re-send is byte-identical, which is what makes it a repeat.
        envelope = {
            "command_id": command_id, "type": command_type, "version": 1,
            "issued_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            "reply_to": self.reply_topic, "payload": payload,
        }
        now = time.monotonic()
        call = _Call(command_id=command_id, type=command_type, key=(key or spec.key(payload)).encode(),
                     value=json.dumps(envelope, separators=(",", ":")).encode(), future=Future(),
                     started=now, deadline=now + (deadline if deadline is not None else self.deadline))
        with self._lock:
            if command_id in self._calls:
                raise ValueError(f"a call with command_id {command_id} is already waiting")
            self._calls[command_id] = call
        self._produce(call, now)
        return call.future

    def close(self) -> None:
        """Stops the reader; waiting calls fail. The reply topic stays (reuse it with ``client_id``)."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._thread.join()
        self._producer.flush(5)
        self._consumer.close()
        with self._lock:
            calls, self._calls = list(self._calls.values()), {}
        for call in calls:
            call.future.set_exception(RuntimeError("the client was closed before the answer came"))

    def __enter__(self) -> "ArrayFSMClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # The background thread.

    def _produce(self, call: _Call, now: float) -> None:
        call.attempts += 1
        call.next_send = now + self.attempt_timeout
        with self._lock:
            heapq.heappush(self._timers, (min(call.next_send, call.deadline), call.command_id))
        while True:
            try:
                self._producer.produce(self.commands_topic, key=call.key, value=call.value)
                break
            except BufferError:
                self._producer.poll(0.01)
        self._producer.poll(0)

    def _run(self) -> None:
        while not self._closed.is_set():
            # poll() returns when an answer arrives; consume() with a timeout would wait the whole
            # timeout unless 500 messages came. What else is already here is taken without waiting.
            try:
                first = self._consumer.poll(0.01)
                messages = [] if first is None else [first] + self._consumer.consume(num_messages=499, timeout=0)
            except KafkaException:
                messages = []
            for message in messages:
                if message.error() is None and message.value() is not None:
                    self._answer(message.value())
            self._producer.poll(0)
            self._check_timers(time.monotonic())

    def _answer(self, value: bytes) -> None:
        try:
            event = json.loads(value)
            command_id = event["command_id"]
        except (ValueError, KeyError, TypeError):
            return
        with self._lock:
            call = self._calls.get(command_id)
            if call is None:
                return  # a late copy, or an answer to a call already resolved
            call.parts[event.get("part", 1)] = event
            if len(call.parts) < event.get("parts", 1):
                return
            del self._calls[command_id]
        events = [call.parts[n] for n in sorted(call.parts)]
        first = events[0]
        if first.get("status") != "ok":
            error = first.get("error") or {}
            call.future.set_exception(CommandRejected(error.get("code", "unknown"), error.get("message", ""),
                                                      command_id, call.type))
            return
        result = merge_parts([e.get("result", {}) for e in events])
        try:
            call.future.set_result(RESULT_TYPES[call.type].from_json(result))
        except (KeyError, TypeError, IndexError) as error:
            call.future.set_exception(ValueError(f"{call.type} {command_id}: unexpected result {result}: {error}"))

    def _check_timers(self, now: float) -> None:
        due: List[_Call] = []
        expired: List[_Call] = []
        with self._lock:
            while self._timers and self._timers[0][0] <= now:
                _, command_id = heapq.heappop(self._timers)
                call = self._calls.get(command_id)
                if call is None:
                    continue
                if now >= call.deadline:
                    del self._calls[command_id]
                    expired.append(call)
                elif now >= call.next_send:
                    due.append(call)
        for call in expired:
            call.future.set_exception(CommandTimeout(call.command_id, call.type, call.attempts, now - call.started))
        for call in due:
            self._produce(call, now)

    def _create_reply_topic(self, common: Mapping[str, Any]) -> None:
        admin = AdminClient(dict(common))
        if self.reply_topic in admin.list_topics(timeout=10).topics:
            return
        future = admin.create_topics([NewTopic(self.reply_topic, num_partitions=1, replication_factor=-1)],
                                     request_timeout=2)[self.reply_topic]
        try:
            future.result(3)
            return
        except KafkaException as error:
            if error.args[0].name() == "TOPIC_ALREADY_EXISTS":
                return
            refusal = error
        except Exception as error:  # no answer: brokers without CreateTopics (librdkafka's mock cluster)
            refusal = error
        # Where the broker creates topics on first use, a producer's metadata request does it.
        if self.reply_topic not in self._producer.list_topics(self.reply_topic, timeout=10).topics:
            raise RuntimeError(f"could not create the reply topic {self.reply_topic}: {refusal}")

    def _assign_from_end(self) -> None:
        # From the current end, resolved now: an answer that arrives before a lazily resolved
        # "end" would be skipped.
        metadata = self._consumer.list_topics(self.reply_topic, timeout=10).topics[self.reply_topic]
        partitions = []
        for number in metadata.partitions:
            _, high = self._consumer.get_watermark_offsets(TopicPartition(self.reply_topic, number), timeout=10)
            partitions.append(TopicPartition(self.reply_topic, number, high if high >= 0 else OFFSET_END))
        self._consumer.assign(partitions)


class AsyncArrayFSMClient:
    """``ArrayFSMClient`` for asyncio: the same methods, as coroutines. Calls run concurrently
    (``asyncio.gather``) without a thread each: one background thread serves them all."""

    def __init__(self, bootstrap_servers: str, **options: Any) -> None:
        self._client = ArrayFSMClient(bootstrap_servers, **options)
        self.reply_topic = self._client.reply_topic

    # Commands, one coroutine each, with ArrayFSMClient's signatures.
    async def add_array(self, *, workflow_id, task_template_version_id, name, max_concurrently_running=None, **kw):
        return await self.call("add_array", workflow_id=workflow_id, task_template_version_id=task_template_version_id,
                               name=name, max_concurrently_running=max_concurrently_running, **kw)

    async def record_array_batch_num(self, *, array_id, task_ids, task_resources_id, workflow_run_id, **kw):
        return await self.call("record_array_batch_num", array_id=array_id, task_ids=task_ids,
                               task_resources_id=task_resources_id, workflow_run_id=workflow_run_id, **kw)

    async def instantiate_array_batch(self, *, array_id, batch_number, **kw):
        return await self.call("instantiate_array_batch", array_id=array_id, batch_number=batch_number, **kw)

    async def instantiate_task_instances(self, *, task_instance_ids, **kw):
        return await self.call("instantiate_task_instances", task_instance_ids=task_instance_ids, **kw)

    async def transition_array_to_launched(self, *, array_id, batch_number, next_report_increment, **kw):
        return await self.call("transition_array_to_launched", array_id=array_id, batch_number=batch_number,
                               next_report_increment=next_report_increment, **kw)

    async def log_array_submit_failed(self, *, array_id, batch_number, **kw):
        return await self.call("log_array_submit_failed", array_id=array_id, batch_number=batch_number, **kw)

    async def log_array_distributor_id(self, *, array_id, distributor_ids=None, **kw):
        return await self.call("log_array_distributor_id", array_id=array_id, distributor_ids=distributor_ids, **kw)

    async def transition_to_killed(self, *, array_id, batch_number, **kw):
        return await self.call("transition_to_killed", array_id=array_id, batch_number=batch_number, **kw)

    async def get_array_max_concurrently_running(self, *, array_id=None, workflow_id=None, task_template_version_id=None,
                                                 **kw):
        return await self.call("get_array_max_concurrently_running", array_id=array_id, workflow_id=workflow_id,
                               task_template_version_id=task_template_version_id, **kw)

    async def call(self, command_type: str, **fields: Any):
        """Sends a command and awaits its result (see ``ArrayFSMClient.send``)."""
        return await asyncio.wrap_future(self._client.send(command_type, **fields))

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self._client.close)

    async def __aenter__(self) -> "AsyncArrayFSMClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()
