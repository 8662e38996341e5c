"""arrayfsm's Python client: commands and their answers over Kafka, transition events for
analytics, and a Jobmon requester (``arrayfsm_client.jobmon``)."""

from .client import ArrayFSMClient, AsyncArrayFSMClient
from .errors import ArrayFSMError, CommandRejected, CommandTimeout
from .results import (AddArrayResult, Batch, BatchTransitionResult, LogArrayDistributorIDResult,
                      MaxConcurrentlyRunningResult, RecordArrayBatchNumResult, TaskInstanceBatch,
                      TaskInstanceBatchesResult)
from .transitions import TransitionAssembler, TransitionEvent, TransitionReader, assemble

__all__ = [
    "ArrayFSMClient", "AsyncArrayFSMClient", "ArrayFSMError", "CommandRejected", "CommandTimeout",
    "AddArrayResult", "Batch", "BatchTransitionResult", "LogArrayDistributorIDResult",
    "MaxConcurrentlyRunningResult", "RecordArrayBatchNumResult", "TaskInstanceBatch", "TaskInstanceBatchesResult",
    "TransitionAssembler", "TransitionEvent", "TransitionReader", "assemble",
]
