"""Typed results of arrayfsm's commands, and the reassembly of split result events.

Every command type answers one result shape (docs/contract.md, "Commands and their result
payloads"); ``RESULT_TYPES`` maps a type to the dataclass that reads it. A result too large
for one event arrives in parts (``part``/``parts``); ``merge_parts`` puts the id lists of the
parts back together, so callers never see a split.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence


@dataclass(frozen=True)
class AddArrayResult:
    array_id: int
    created: bool

    @classmethod
    def from_json(cls, result: Mapping[str, Any]) -> "AddArrayResult":
        return cls(array_id=result["array_id"], created=result["created"])


@dataclass(frozen=True)
class Batch:
    """One batch a ``record_array_batch_num`` opened: its instances, ordered by step id."""

    batch_number: int
    task_instance_ids: List[int]


@dataclass(frozen=True)
class RecordArrayBatchNumResult:
    batches: List[Batch]
    #: Task status → task ids, covering every requested id.
    tasks_by_status: Dict[str, List[int]]

    @classmethod
    def from_json(cls, result: Mapping[str, Any]) -> "RecordArrayBatchNumResult":
        return cls(
            batches=[Batch(b["batch_number"], list(b["task_instance_ids"])) for b in result["batches"]],
            tasks_by_status={status: list(ids) for status, ids in result["tasks_by_status"].items()},
        )


@dataclass(frozen=True)
class BatchTransitionResult:
    """How many task instances and tasks a batch-wide transition moved."""

    task_instances: int
    tasks: int

    @classmethod
    def from_json(cls, result: Mapping[str, Any]) -> "BatchTransitionResult":
        return cls(task_instances=result["task_instances"], tasks=result["tasks"])


@dataclass(frozen=True)
class LogArrayDistributorIDResult:
    task_instances: int
    skipped_task_instance_ids: List[int] = field(default_factory=list)

    @classmethod
    def from_json(cls, result: Mapping[str, Any]) -> "LogArrayDistributorIDResult":
        return cls(
            task_instances=result["task_instances"],
            skipped_task_instance_ids=list(result.get("skipped_task_instance_ids", [])),
        )


@dataclass(frozen=True)
class MaxConcurrentlyRunningResult:
    array_id: int
    max_concurrently_running: int

    @classmethod
    def from_json(cls, result: Mapping[str, Any]) -> "MaxConcurrentlyRunningResult":
        return cls(array_id=result["array_id"], max_concurrently_running=result["max_concurrently_running"])


@dataclass(frozen=True)
class TaskInstanceBatch:
    """One entry of Jobmon's ``task_instance_batches``."""

    array_id: int
    array_name: str
    array_batch_num: int
    task_resources_id: Optional[int]
    task_instance_ids: List[int]

    def to_wire(self) -> list:
        """Jobmon's wire form: ``[array_id, array_name, array_batch_num, task_resources_id, [ids]]``."""
        return [self.array_id, self.array_name, self.array_batch_num, self.task_resources_id, list(self.task_instance_ids)]


@dataclass(frozen=True)
class TaskInstanceBatchesResult:
    task_instance_batches: List[TaskInstanceBatch]

    @classmethod
    def from_json(cls, result: Mapping[str, Any]) -> "TaskInstanceBatchesResult":
        return cls(task_instance_batches=[TaskInstanceBatch(b[0], b[1], b[2], b[3], list(b[4]))
                                          for b in result["task_instance_batches"]])


RESULT_TYPES = {
    "add_array": AddArrayResult,
    "record_array_batch_num": RecordArrayBatchNumResult,
    "transition_array_to_launched": BatchTransitionResult,
    "transition_to_killed": BatchTransitionResult,
    "instantiate_array_batch": BatchTransitionResult,
    "log_array_submit_failed": BatchTransitionResult,
    "log_array_distributor_id": LogArrayDistributorIDResult,
    "get_array_max_concurrently_running": MaxConcurrentlyRunningResult,
    "instantiate_task_instances": TaskInstanceBatchesResult,
}


def merge_parts(results: Sequence[Mapping[str, Any]]) -> Dict[str, Any]:
    """The ``result`` objects of a split event's parts, in part order, as one result.

    Scalars come from part one (later parts carry zeros there); id lists are concatenated; a
    batch split over parts (same batch number, or same array/name/batch/resources) becomes one.
    """
    merged: Dict[str, Any] = dict(results[0])
    for part in results[1:]:
        for name, value in part.items():
            if name not in merged:
                merged[name] = value
            elif isinstance(value, list):
                merged[name] = list(merged[name]) + list(value)
            elif isinstance(value, dict):
                combined = {key: list(ids) for key, ids in merged[name].items()}
                for key, ids in value.items():
                    combined[key] = combined.get(key, []) + list(ids)
                merged[name] = combined
    if "batches" in merged:
        by_number: Dict[int, List[int]] = {}
        for batch in merged["batches"]:
            by_number.setdefault(batch["batch_number"], []).extend(batch["task_instance_ids"])
        merged["batches"] = [{"batch_number": n, "task_instance_ids": ids} for n, ids in by_number.items()]
    if "task_instance_batches" in merged:
        by_batch: Dict[tuple, List[int]] = {}
        for entry in merged["task_instance_batches"]:
            by_batch.setdefault(tuple(entry[:4]), []).extend(entry[4])
        merged["task_instance_batches"] = [list(key) + [ids] for key, ids in by_batch.items()]
    return merged
