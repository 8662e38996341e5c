"""The servers the client's tests run against, all real: a throwaway PostgreSQL
(`arrayfsm local-postgres`), a Kafka-protocol broker (`arrayfsm dev-broker`, librdkafka's mock
cluster) and `arrayfsm serve`, each a child process of the test session.

The arrayfsm binary is $ARRAYFSM_BIN, else the debug build of the repository this file is in."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Dict, List, Optional

REPOSITORY = Path(__file__).resolve().parents[3]
SCHEMAS = REPOSITORY / "schemas" / "v1"


def arrayfsm_binary() -> str:
    if os.environ.get("ARRAYFSM_BIN"):
        return os.environ["ARRAYFSM_BIN"]
    bin_path = subprocess.run(["swift", "build", "--show-bin-path"], cwd=REPOSITORY, check=True,
                              capture_output=True, text=True).stdout.strip()
    return os.path.join(bin_path, "arrayfsm")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stack:
    """PostgreSQL, the broker and one serve; `stop()` ends them newest first."""

    def __init__(self, serve_environment: Optional[Dict[str, str]] = None) -> None:
        self.binary = arrayfsm_binary()
        self.directory = tempfile.mkdtemp(prefix="arrayfsm-client-tests-")
        self.processes: List[subprocess.Popen] = []
        self.database_url = self._start_printing("local-postgres", "--migrate")
        self.bootstrap_servers = self._start_printing("dev-broker", "--partitions", "4")
        self.metrics_port = free_port()
        environment = {**os.environ, "ARRAYFSM_DATABASE_URL": self.database_url,
                       "ARRAYFSM_BOOTSTRAP_SERVERS": self.bootstrap_servers,
                       "ARRAYFSM_METRICS_PORT": str(self.metrics_port), **(serve_environment or {})}
        log = open(os.path.join(self.directory, "serve.log"), "wb")
        self.processes.append(subprocess.Popen([self.binary, "serve"], env=environment, stdout=log, stderr=subprocess.STDOUT))
        self._wait_ready()

    def _start_printing(self, *arguments: str) -> str:
        """Starts `arrayfsm ARGUMENTS` and returns the first line it prints."""
        name = arguments[0]
        out = open(os.path.join(self.directory, f"{name}.out"), "w+")
        err = open(os.path.join(self.directory, f"{name}.err"), "w")
        process = subprocess.Popen([self.binary, *arguments], stdout=out, stderr=err)
        self.processes.append(process)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            out.seek(0)
            line = out.readline()
            if line.endswith("\n"):
                return line.strip()
            if process.poll() is not None:
                raise RuntimeError(f"arrayfsm {name} exited: {open(err.name).read()}")
            time.sleep(0.05)
        raise RuntimeError(f"arrayfsm {name} printed nothing in 120 s")

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/ready", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            if self.processes[-1].poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError("serve did not become ready: " + self.serve_log())

    def serve_log(self) -> str:
        return Path(self.directory, "serve.log").read_text(errors="replace")[-4000:]

    def sql(self, query: str) -> List[List[str]]:
        """Rows of a query, through psql (fields as text)."""
        out = subprocess.run(["psql", self.database_url, "-X", "-q", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1",
                              "-c", query], check=True, capture_output=True, text=True).stdout
        return [line.split("\t") for line in out.splitlines() if line]

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(60)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def make_array(stack: Stack, tasks: int, workflow_id: Optional[int] = None, status: str = "G") -> Dict[str, object]:
    """An array of `tasks` tasks in `status`, made in the database as a workflow binding would."""
    workflow_id = workflow_id or int.from_bytes(os.urandom(3), "big") + 1
    array_id = int(stack.sql(
        f"INSERT INTO \"array\" (workflow_id, task_template_version_id, max_concurrently_running, name) "
        f"VALUES ({workflow_id}, {workflow_id}, 100, 'array-{workflow_id}') RETURNING id")[0][0])
    ids = [int(row[0]) for row in stack.sql(
        f"INSERT INTO task (workflow_id, array_id, name, status) SELECT {workflow_id}, {array_id}, 'task-' || n, '{status}' "
        f"FROM generate_series(1, {tasks}) AS n RETURNING id")]
    return {"array_id": array_id, "workflow_id": workflow_id, "task_ids": sorted(ids)}


def schema_validator(kind: str):
    """A jsonschema validator of schemas/v1 for `command`, `result` or `transition`."""
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource

    resources = []
    for path in SCHEMAS.rglob("*.schema.json"):
        resources.append((path.relative_to(SCHEMAS).as_posix(), Resource.from_contents(json.loads(path.read_text()))))
    registry = Registry().with_resources(resources)
    name = {"command": "command-envelope.schema.json", "result": "result-event.schema.json",
            "transition": "transition-event.schema.json"}[kind]
    return Draft202012Validator({"$ref": name}, registry=registry)


def read_topic(bootstrap_servers: str, topic: str, until, timeout: float = 30.0) -> List[dict]:
    """Every message of `topic` from the start, decoded, read until `until(messages)` holds."""
    import uuid

    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": f"test-{uuid.uuid4().hex}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    # Assigned, not subscribed: no group join to wait for.
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    messages: List[dict] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not until(messages):
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                messages.append({"key": message.key(), "value": json.loads(message.value())})
    finally:
        consumer.close()
    return messages
