"""The command types of the wire contract: each one's payload fields and message key.

Keys follow docs/contract.md ("Topics"): the decimal array id for commands on one array (so
one array's commands are applied in the order produced), ``wf-<workflow_id>`` for ``add_array``
and lookups by workflow, ``ti-<lowest listed id>`` for ``instantiate_task_instances``, whose
instances may be of several arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, Mapping, Tuple


def _array_key(payload: Mapping[str, Any]) -> str:
    return str(payload["array_id"])


def _lookup_key(payload: Mapping[str, Any]) -> str:
    if payload.get("array_id") is not None:
        return str(payload["array_id"])
    return f"wf-{payload['workflow_id']}"


def _instances_key(payload: Mapping[str, Any]) -> str:
    ids = payload["task_instance_ids"]
    return f"ti-{min(ids) if ids else 0}"


@dataclass(frozen=True)
class CommandSpec:
    type: str
    required: Tuple[str, ...]
    optional: Tuple[str, ...]
    key: Callable[[Mapping[str, Any]], str]

    def payload(self, fields: Mapping[str, Any]) -> Dict[str, Any]:
        """The payload from keyword arguments: every required field, the optional ones given."""
        missing = [name for name in self.required if fields.get(name) is None]
        unknown = sorted(set(fields) - set(self.required) - set(self.optional))
        if missing or unknown:
            problems = ([f"missing {', '.join(missing)}"] if missing else []) + (
                [f"unknown {', '.join(unknown)}"] if unknown else [])
            raise TypeError(f"{self.type}(): {'; '.join(problems)}")
        return {name: value for name, value in fields.items() if value is not None}


COMMANDS: Dict[str, CommandSpec] = {spec.type: spec for spec in [
    CommandSpec("add_array", ("workflow_id", "task_template_version_id", "name"), ("max_concurrently_running",),
                lambda p: f"wf-{p['workflow_id']}"),
    CommandSpec("record_array_batch_num", ("array_id", "task_ids", "task_resources_id", "workflow_run_id"), (), _array_key),
    CommandSpec("instantiate_array_batch", ("array_id", "batch_number"), (), _array_key),
    CommandSpec("instantiate_task_instances", ("task_instance_ids",), (), _instances_key),
    CommandSpec("transition_array_to_launched", ("array_id", "batch_number", "next_report_increment"), (), _array_key),
    CommandSpec("log_array_submit_failed", ("array_id", "batch_number"), (), _array_key),
    CommandSpec("log_array_distributor_id", ("array_id",),
                ("distributor_ids", "distributor_ids_by_step", "batch_number", "stdout", "stderr"), _array_key),
    CommandSpec("transition_to_killed", ("array_id", "batch_number"), (), _array_key),
    CommandSpec("get_array_max_concurrently_running", (), ("array_id", "workflow_id", "task_template_version_id"),
                _lookup_key),
]}
