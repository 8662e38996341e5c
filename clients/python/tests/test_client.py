"""ArrayFSMClient against a real serve: every command, refusals, split results, re-sends, reply isolation."""

import asyncio
import uuid

import pytest

from arrayfsm_client import (AddArrayResult, ArrayFSMClient, AsyncArrayFSMClient, BatchTransitionResult,
                             CommandRejected, CommandTimeout, MaxConcurrentlyRunningResult, TaskInstanceBatch)

from stack import make_array, read_topic, schema_validator


def test_every_command_type_with_typed_results(stack, client):
    workflow_id = int(uuid.uuid4().int % 1_000_000_000) + 1
    added = client.add_array(workflow_id=workflow_id, task_template_version_id=3, max_concurrently_running=40, name="alpha")
    assert isinstance(added, AddArrayResult) and added.created
    array_id = added.array_id
    assert client.get_array_max_concurrently_running(array_id=array_id) == MaxConcurrentlyRunningResult(array_id, 40)
    assert client.get_array_max_concurrently_running(workflow_id=workflow_id, task_template_version_id=3).array_id == array_id
    task_ids = [int(r[0]) for r in stack.sql(
        f"INSERT INTO task (workflow_id, array_id, status) SELECT {workflow_id}, {array_id}, 'G' FROM generate_series(1, 6) "
        "RETURNING id")]
    recorded = [client.record_array_batch_num(array_id=array_id, task_ids=task_ids[i:i + 3], task_resources_id=5,
                                              workflow_run_id=9) for i in (0, 3)]
    assert [r.batches[0].batch_number for r in recorded] == [1, 2]
    assert recorded[0].tasks_by_status == {"Q": task_ids[:3]}
    batch_one = recorded[0].batches[0].task_instance_ids
    batch_two = recorded[1].batches[0].task_instance_ids

    assert client.instantiate_array_batch(array_id=array_id, batch_number=1) == BatchTransitionResult(3, 3)
    instantiated = client.instantiate_task_instances(task_instance_ids=batch_two)
    assert instantiated.task_instance_batches == [TaskInstanceBatch(array_id, "alpha", 2, 5, sorted(batch_two))]
    assert client.transition_array_to_launched(array_id=array_id, batch_number=1, next_report_increment=279.0).task_instances == 3
    logged = client.log_array_distributor_id(array_id=array_id, distributor_ids={str(ti): f"77_{n}" for n, ti in enumerate(batch_one)})
    assert logged.task_instances == 3 and logged.skipped_task_instance_ids == []
    assert client.log_array_submit_failed(array_id=array_id, batch_number=2) == BatchTransitionResult(3, 0)
    stack.sql(f"UPDATE task_instance SET status = 'K' WHERE id IN ({batch_one[0]})")
    assert client.transition_to_killed(array_id=array_id, batch_number=1) == BatchTransitionResult(1, 1)
    statuses = dict((r[0], r[1]) for r in stack.sql(
        f"SELECT status, count(*) FROM task_instance WHERE array_id = {array_id} GROUP BY status"))
    assert statuses == {"O": "2", "F": "1", "W": "3"}


def test_a_refusal_raises_with_its_code_and_message(client):
    with pytest.raises(CommandRejected) as refused:
        client.transition_to_killed(array_id=987_654_321, batch_number=1)
    assert refused.value.code == "not_found" and "987654321" in refused.value.message
    with pytest.raises(CommandRejected) as refused:
        client.record_array_batch_num(array_id=1, task_ids=[0], task_resources_id=1, workflow_run_id=1)
    assert refused.value.code == "invalid_argument"
    with pytest.raises(TypeError):
        client.call("transition_to_killed", array_id=1)


def test_a_split_result_is_reassembled(stack, client):
    array = make_array(stack, 30_000)
    result = client.record_array_batch_num(array_id=array["array_id"], task_ids=array["task_ids"], task_resources_id=1,
                                           workflow_run_id=1)
    events = read_topic(stack.bootstrap_servers, client.reply_topic, lambda ms: sum(
        1 for m in ms if m["value"].get("command_id") and m["value"].get("parts", 1) == m["value"].get("part", 1)
        and m["value"]["type"] == "record_array_batch_num" and len(m["value"]["result"]["tasks_by_status"].get("Q", [])) > 0) > 0)
    assert max(e["value"].get("parts", 1) for e in events) > 1, "the result was split"
    assert [b.batch_number for b in result.batches] == list(range(1, 31))
    assert sum(len(b.task_instance_ids) for b in result.batches) == 30_000
    assert sorted(result.tasks_by_status["Q"]) == array["task_ids"]


def test_a_timed_out_attempt_is_sent_again_and_applied_once(stack):
    array = make_array(stack, 5_000)
    # 20 ms per attempt: queueing 5,000 tasks takes longer, so the same command goes out again.
    with ArrayFSMClient(stack.bootstrap_servers, attempt_timeout=0.02, deadline=60) as hasty:
        command_id = f"resend-{uuid.uuid4().hex}"
        result = hasty.record_array_batch_num(array_id=array["array_id"], task_ids=array["task_ids"], task_resources_id=1,
                                              workflow_run_id=1, command_id=command_id)
        reply_topic = hasty.reply_topic
    assert sum(len(b.task_instance_ids) for b in result.batches) == 5_000
    sent = read_topic(stack.bootstrap_servers, "arrayfsm.commands",
                      lambda ms: sum(1 for m in ms if m["value"].get("command_id") == command_id) >= 2)
    assert sum(1 for m in sent if m["value"].get("command_id") == command_id) >= 2, "sent more than once"
    assert stack.sql(f"SELECT count(*), max(array_batch_num) FROM task_instance WHERE array_id = {array['array_id']}") == [
        ["5000", "5"]], "applied once"
    answers = read_topic(stack.bootstrap_servers, reply_topic, lambda ms: len(ms) >= 2, timeout=10)
    assert {m["value"]["event_id"] for m in answers if m["value"]["command_id"] == command_id} == {f"{command_id}:result"}


def test_no_answer_gives_up_after_the_deadline(stack):
    topic = f"arrayfsm.nobody-{uuid.uuid4().hex}"  # created on first produce; serve does not read it
    with ArrayFSMClient(stack.bootstrap_servers, commands_topic=topic, attempt_timeout=0.2, deadline=1.0) as lonely:
        with pytest.raises(CommandTimeout) as timed_out:
            lonely.get_array_max_concurrently_running(array_id=1)
    assert timed_out.value.attempts >= 3 and timed_out.value.waited >= 1.0


def test_two_clients_each_read_only_their_own_answers(stack):
    array = make_array(stack, 1)
    with ArrayFSMClient(stack.bootstrap_servers) as first, ArrayFSMClient(stack.bootstrap_servers) as second:
        futures = {client: [client.send("get_array_max_concurrently_running", array_id=array["array_id"]) for _ in range(20)]
                   for client in (first, second)}
        for client, pending in futures.items():
            assert all(f.result(60).max_concurrently_running == 100 for f in pending)
        topics = (first.reply_topic, second.reply_topic)
    for topic in topics:
        replies = read_topic(stack.bootstrap_servers, topic, lambda ms: len(ms) >= 20, timeout=10)
        assert len(replies) == 20
        assert len({m["value"]["command_id"] for m in replies}) == 20
    first_ids = {m["value"]["command_id"] for m in read_topic(stack.bootstrap_servers, topics[0], lambda ms: len(ms) >= 20)}
    second_ids = {m["value"]["command_id"] for m in read_topic(stack.bootstrap_servers, topics[1], lambda ms: len(ms) >= 20)}
    assert not first_ids & second_ids


def test_asyncio_calls_run_concurrently_and_every_event_is_schema_valid(stack):
    array = make_array(stack, 1)

    async def many():
        async with AsyncArrayFSMClient(stack.bootstrap_servers) as client:
            return await asyncio.gather(*[client.get_array_max_concurrently_running(array_id=array["array_id"])
                                          for _ in range(200)]), client.reply_topic

    results, reply_topic = asyncio.run(many())
    assert all(r.max_concurrently_running == 100 for r in results)
    validator = schema_validator("result")
    for message in read_topic(stack.bootstrap_servers, reply_topic, lambda ms: len(ms) >= 200):
        validator.validate(message["value"])
    command_validator = schema_validator("command")
    for message in read_topic(stack.bootstrap_servers, "arrayfsm.commands", lambda ms: len(ms) >= 200):
        if message["value"].get("reply_to") == reply_topic:
            command_validator.validate(message["value"])
