"""The acid test: Jobmon's own, unmodified client and distributor code (jobmon-core 3.4.8,
jobmon-client 3.3.0 from PyPI) running its array path on arrayfsm through KafkaRequester.

Two things here are test code standing in for what a real deployment has, and are named so:
`JobmonRoutesFromDatabase` answers the few routes that are not arrayfsm's (Jobmon's HTTP
server does in production) from the same database, and `ArrayClusterWithoutJobs` is a cluster
that accepts array submissions and runs nothing (no Slurm here)."""

import time
import uuid
from datetime import datetime, timezone
from types import SimpleNamespace

from jobmon.client.array import Array
from jobmon.client.swarm.swarm_task import SwarmTask
from jobmon.client.swarm.workflow_run import WorkflowRun
from jobmon.client.task_resources import TaskResources
from jobmon.core.cluster_protocol import ClusterDistributor
from jobmon.core.constants import TaskInstanceStatus
from jobmon.core.exceptions import InvalidRequest
from jobmon.distributor.distributor_service import DistributorService

import pytest

from arrayfsm_client import ArrayFSMClient
from arrayfsm_client.jobmon import KafkaRequester, RouteNotServed

from stack import make_array, read_topic, schema_validator


class JobmonRoutesFromDatabase:
    """Test code: the non-array routes Jobmon's code calls, answered from arrayfsm's database as
    Jobmon's server would (a requester's `send_request`)."""

    def __init__(self, stack):
        self.stack = stack
        self.resources = {}
        self.calls = []

    def send_request(self, app_route, message, request_type, tenacious=True):
        self.calls.append((request_type, app_route))
        parts = app_route.strip("/").split("/")
        if app_route == "/task/bind_resources":
            resources_id = len(self.resources) + 11
            self.resources[resources_id] = message["requested_resources"]
            return 200, resources_id
        if parts[0] == "task_resources":
            return 200, {"requested_resources": self.resources[int(parts[1])], "queue_name": "all.q"}
        if parts[0] == "workflow_run" and parts[2] == "update_status":
            return 200, {"status": message["status"]}
        if parts[0] == "workflow_run" and parts[2] == "sync_status":
            ids = ",".join(str(i) for i in message["task_instance_ids"]) or "0"
            status = message["status"]
            rows = self.stack.sql(
                f"SELECT status, string_agg(id::text, ',') FROM task_instance WHERE workflow_run_id = {int(parts[1])} "
                f"AND ((id IN ({ids}) AND status <> '{status}') OR (status = '{status}' AND id NOT IN ({ids}))) "
                "GROUP BY status")
            return 200, {"status_updates": {s: [int(i) for i in csv.split(",")] for s, csv in rows}}
        raise AssertionError(f"unexpected route {request_type} {app_route}")


class ArrayClusterWithoutJobs(ClusterDistributor):
    """Test code: a cluster that accepts array submissions and runs nothing; its distributor ids
    are `<submission number>_<step>`."""

    def __init__(self, cluster_name="arrayfsm-test"):
        self._name = cluster_name
        self.submissions = []
        self.terminated = []

    @property
    def worker_node_entry_point(self):
        return "worker_node_entry_point"

    @property
    def cluster_name(self):
        return self._name

    def start(self):
        pass

    def stop(self):
        pass

    def get_queueing_errors(self, distributor_ids):
        return {}

    def get_submitted_or_running(self, distributor_ids=None):
        return set(distributor_ids or [])

    def terminate_task_instances(self, distributor_ids):
        self.terminated += list(distributor_ids)

    def get_remote_exit_info(self, distributor_id):
        return TaskInstanceStatus.UNKNOWN_ERROR, "never ran"

    def submit_to_batch_distributor(self, command, name, requested_resources):
        raise AssertionError("the array path submits arrays, not single instances")

    def submit_array_to_batch_distributor(self, command, name, requested_resources, array_length):
        self.submissions.append((command, name, requested_resources, array_length))
        number = len(self.submissions)
        return {step: f"{number}_{step}" for step in range(array_length)}


def test_jobmons_array_path_runs_on_arrayfsm(stack):
    fallback = JobmonRoutesFromDatabase(stack)
    client = ArrayFSMClient(stack.bootstrap_servers)
    try:
        requester = KafkaRequester(client, fallback=fallback)
        workflow_id = uuid.uuid4().int % 1_000_000_000 + 1
        workflow_run_id = uuid.uuid4().int % 1_000_000_000 + 1

        # Array.bind, twice: the arrays of two task templates of one workflow.
        arrays = []
        for template_version, size in ((31, 1200), (32, 30)):
            array = Array(task_template_version=SimpleNamespace(id=template_version, task_template=SimpleNamespace(template_name="t")),
                          task_args={}, op_args={}, cluster_name="arrayfsm-test", max_concurrently_running=500,
                          name=f"array-{template_version}", requester=requester)
            array.workflow = SimpleNamespace(workflow_id=workflow_id)
            array.bind()
            task_ids = [int(r[0]) for r in stack.sql(
                f"INSERT INTO task (workflow_id, array_id, status) SELECT {workflow_id}, {array.array_id}, 'G' "
                f"FROM generate_series(1, {size}) RETURNING id")]
            arrays.append((array, sorted(task_ids)))
        assert arrays[0][0].array_id != arrays[1][0].array_id

        # The swarm queues each array's tasks.
        swarm = WorkflowRun(workflow_run_id=workflow_run_id, requester=requester)
        for array, task_ids in arrays:
            resources = TaskResources({"cores": 1}, SimpleNamespace(queue_id=1, queue_name="all.q"), requester=requester)
            tasks = [SwarmTask(task_id, array.array_id, "G", 3, resources, SimpleNamespace(id=1)) for task_id in task_ids]
            swarm.tasks.update({task.task_id: task for task in tasks})
            swarm.queue_task_batch(tasks)
        assert {task.status for task in swarm.tasks.values()} == {"Q"}

        # The distributor: Q → I → launched → distributor ids.
        cluster = ArrayClusterWithoutJobs()
        distributor = DistributorService(cluster, requester=requester, workflow_run_heartbeat_interval=30,
                                         task_instance_heartbeat_interval=90, heartbeat_report_by_buffer=3.1,
                                         raise_on_error=True)
        distributor.set_workflow_run(workflow_run_id)
        started = datetime.now(timezone.utc)
        for status in (TaskInstanceStatus.QUEUED, TaskInstanceStatus.INSTANTIATED):
            distributor.refresh_status_from_db(status)
            distributor.process_status(status)
        assert sorted(s[3] for s in cluster.submissions) == [30, 200, 1000]

        big, small = arrays[0][0].array_id, arrays[1][0].array_id
        rows = stack.sql(
            "SELECT ti.array_id, ti.array_batch_num, ti.array_step_id, ti.status, t.status, ti.distributor_id, "
            "extract(epoch FROM ti.report_by_date), ti.task_resources_id, ti.workflow_run_id "
            f"FROM task_instance ti JOIN task t ON t.id = ti.task_id WHERE ti.array_id IN ({big}, {small}) ORDER BY ti.id")
        assert len(rows) == 1230
        assert {(int(r[0]), int(r[1])) for r in rows} == {(big, 1), (big, 2), (small, 1)}
        assert {(r[3], r[4]) for r in rows} == {("O", "O")}
        # Each instance holds the distributor id its batch's submission gave its step.
        by_submission = {(s[1], s[3]): n + 1 for n, s in enumerate(cluster.submissions)}
        for array_id, batch, step, _, _, distributor_id, report_by, resources_id, run_id in rows:
            name = f"array-{31 if int(array_id) == big else 32}-{batch}"
            size = sum(1 for r in rows if r[0] == array_id and r[1] == batch)
            assert distributor_id == f"{by_submission[(name, size)]}_{step}"
            assert abs(float(report_by) - (started.timestamp() + 279)) < 60
            assert int(run_id) == workflow_run_id and int(resources_id) in fallback.resources
        assert {int(r[2]) for r in rows if int(r[0]) == big and r[1] == "2"} == set(range(200))

        # A resume tells ten instances of the big array's first batch to kill themselves.
        killed = [int(r[0]) for r in stack.sql(
            f"UPDATE task_instance SET status = 'K' WHERE id IN (SELECT id FROM task_instance WHERE array_id = {big} "
            "AND array_batch_num = 1 ORDER BY id LIMIT 10) RETURNING id")]
        # As the distributor's loop does: every status refreshed, work only for those that have some.
        distributor.refresh_status_from_db(TaskInstanceStatus.LAUNCHED)
        distributor.refresh_status_from_db(TaskInstanceStatus.KILL_SELF)
        distributor.process_status(TaskInstanceStatus.KILL_SELF)
        # Jobmon's kill_self_batch terminates the jobs of the whole batch; only its K instances (and
        # their tasks) become F.
        assert sorted(cluster.terminated) == sorted(r[5] for r in rows if int(r[0]) == big and r[1] == "1")
        counts = dict((r[0] + r[1], int(r[2])) for r in stack.sql(
            f"SELECT ti.status, t.status, count(*) FROM task_instance ti JOIN task t ON t.id = ti.task_id "
            f"WHERE ti.array_id = {big} GROUP BY 1, 2"))
        assert counts == {"OO": 1190, "FF": 10}
        assert sorted(int(r[0]) for r in stack.sql(f"SELECT id FROM task_instance WHERE status = 'F' AND array_id = {big}")) == sorted(killed)

        # Jobmon's array routes went to arrayfsm; the fallback saw only the routes that are not its.
        assert {route.split("/")[1] if route.count("/") > 1 else route for _, route in fallback.calls} <= {
            "task", "task_resources", "workflow_run"}
        assert all("/array" not in route and "instantiate" not in route for _, route in fallback.calls)

        # Every result and transition event serve published is schema-valid.
        results = read_topic(stack.bootstrap_servers, "arrayfsm.results", lambda ms: False, timeout=5)
        transitions = read_topic(stack.bootstrap_servers, "arrayfsm.transitions", lambda ms: False, timeout=5)
        assert any(m["value"]["type"] == "instantiate_task_instances" for m in results)
        result_schema, transition_schema = schema_validator("result"), schema_validator("transition")
        for message in results:
            result_schema.validate(message["value"])
        for message in transitions:
            transition_schema.validate(message["value"])
    finally:
        client.close()


def test_refusals_are_jobmons_4xx_and_unowned_routes_need_a_fallback(stack):
    with ArrayFSMClient(stack.bootstrap_servers) as client:
        requester = KafkaRequester(client)
        with pytest.raises(InvalidRequest, match="status code 404"):
            requester.send_request("/array/987654321/transition_to_killed", {"batch_number": 1}, "post")
        array = make_array(stack, 1)
        with pytest.raises(InvalidRequest, match="status code 404"):
            requester.send_request(f"/array/{array['array_id']}/transition_to_launched",
                                   {"batch_number": 5, "next_report_increment": 10.0}, "post")
        status, body = requester.send_request(f"/array/{array['array_id']}/get_array_max_concurrently_running", {}, "get")
        assert (status, body) == (200, {"max_concurrently_running": 100})
        with pytest.raises(RouteNotServed):
            requester.send_request("/workflow_run/1/log_heartbeat", {}, "post")
