"""Jobmon's requester, served by arrayfsm: ``KafkaRequester(client, fallback=None)``.

Jobmon's client and distributor send every call through ``requester.send_request(app_route,
message, request_type, tenacious=True) -> (status, json)``, and take the requester as a
constructor argument (``Array(…, requester=)``, ``WorkflowRun(…, requester=)``,
``DistributorService(…, requester=)``). ``KafkaRequester`` answers the array routes —
and the distributor's ``/task_instance/instantiate_task_instances`` — with arrayfsm commands,
with the bodies and answers of Jobmon's server; every other route goes to ``fallback`` (in
production, Jobmon's own HTTP ``Requester``). A route arrayfsm does not own and no fallback
raises ``RouteNotServed``: nothing is ever answered silently.

Errors look as Jobmon's ``Requester`` makes them: a rejected command is the 4xx its server would
answer (``InvalidRequest``: bad input 400, unknown array or batch 404, a reused command id 409),
a database failure or no answer before the deadline is ``InvalidResponse`` (5xx, which
Jobmon's callers retry). With jobmon-core installed these are its own exception classes.
"""

from __future__ import annotations

import asyncio
import re
from concurrent.futures import Future
from typing import Any, Callable, Dict, Optional, Tuple

from .client import ArrayFSMClient
from .errors import CommandRejected, CommandTimeout

try:  # Jobmon's callers catch its own exceptions.
    from jobmon.core.exceptions import InvalidRequest, InvalidResponse
except ImportError:  # pragma: no cover - jobmon-core absent
    class InvalidRequest(Exception):  # type: ignore[no-redef]
        """A 4xx answer (Jobmon's ``InvalidRequest``)."""

    class InvalidResponse(Exception):  # type: ignore[no-redef]
        """A 5xx answer or none (Jobmon's ``InvalidResponse``)."""


class RouteNotServed(LookupError):
    """A route arrayfsm does not own, and no fallback requester was given."""


#: The HTTP status Jobmon's server gives a refusal of each kind.
STATUS_BY_CODE = {
    "invalid_argument": 400, "tasks_not_in_array": 400, "reply_to_not_allowed": 400,
    "not_found": 404, "batch_not_found": 404, "command_id_reused": 409, "database_error": 500,
}

Route = Tuple[str, "re.Pattern[str]", Callable[..., Tuple[str, Dict[str, Any], Callable[[Any], Any]]]]


def _add_array(message):
    return "add_array", {
        "workflow_id": message["workflow_id"], "task_template_version_id": message["task_template_version_id"],
        "max_concurrently_running": message.get("max_concurrently_running"), "name": message["name"],
    }, lambda r: {"array_id": r.array_id}


def _queue_task_batch(message, array_id):
    return "record_array_batch_num", {
        "array_id": int(array_id), "task_ids": list(message["task_ids"]),
        "task_resources_id": message["task_resources_id"], "workflow_run_id": message["workflow_run_id"],
    }, lambda r: {"tasks_by_status": r.tasks_by_status}


def _transition_to_launched(message, array_id):
    return "transition_array_to_launched", {
        "array_id": int(array_id), "batch_number": message["batch_number"],
        "next_report_increment": message["next_report_increment"],
    }, lambda r: {}


def _log_distributor_id(message, array_id):
    # The body is the bare map {task instance id: distributor id}; JSON keys are strings.
    return "log_array_distributor_id", {
        "array_id": int(array_id), "distributor_ids": {str(ti): str(d) for ti, d in message.items()},
    }, lambda r: {"success": True}


def _transition_to_killed(message, array_id):
    return "transition_to_killed", {"array_id": int(array_id), "batch_number": message["batch_number"]}, lambda r: {}


def _max_by_array(message, array_id):
    return "get_array_max_concurrently_running", {"array_id": int(array_id)}, \
        lambda r: {"max_concurrently_running": r.max_concurrently_running}


def _max_by_workflow(message, workflow_id, task_template_version_id):
    return "get_array_max_concurrently_running", {
        "workflow_id": int(workflow_id), "task_template_version_id": int(task_template_version_id),
    }, lambda r: {"max_concurrently_running": r.max_concurrently_running}


def _instantiate_task_instances(message):
    return "instantiate_task_instances", {"task_instance_ids": [int(i) for i in message["task_instance_ids"]]}, \
        lambda r: {"task_instance_batches": [batch.to_wire() for batch in r.task_instance_batches]}


ROUTES = [
    ("post", re.compile(r"/array"), _add_array),
    ("post", re.compile(r"/array/(\d+)/queue_task_batch"), _queue_task_batch),
    ("post", re.compile(r"/array/(\d+)/transition_to_launched"), _transition_to_launched),
    ("post", re.compile(r"/array/(\d+)/log_distributor_id"), _log_distributor_id),
    ("post", re.compile(r"/array/(\d+)/transition_to_killed"), _transition_to_killed),
    ("get", re.compile(r"/array/(\d+)/get_array_max_concurrently_running"), _max_by_array),
    ("get", re.compile(r"/workflow/(\d+)/get_array_max_concurrently_running/(\d+)"), _max_by_workflow),
    ("post", re.compile(r"/task_instance/instantiate_task_instances"), _instantiate_task_instances),
]


class KafkaRequester:
    """A Jobmon requester whose array routes are arrayfsm commands (see the module's text).

    :param client: the ``ArrayFSMClient`` the commands go through.
    :param fallback: the requester for every other route (Jobmon's ``Requester``, or any object
        with its ``send_request``).
    """

    #: Jobmon reads this for routes it builds itself; arrayfsm's routes have no prefix.
    route_prefix = ""

    def __init__(self, client: ArrayFSMClient, fallback: Optional[Any] = None) -> None:
        self.client = client
        self.fallback = fallback

    @property
    def base_url(self) -> str:
        """The fallback's server (Jobmon opens its own HTTP sessions for heartbeats there)."""
        return getattr(self.fallback, "base_url", "")

    def send_request(self, app_route: str, message: Any, request_type: str, tenacious: bool = True) -> Tuple[int, Any]:
        """Jobmon's ``send_request``: ``(200, body)``, or raises as Jobmon's ``Requester`` does."""
        started = self._start(app_route, message, request_type, tenacious)
        if started is None:
            return self._fallback().send_request(app_route=app_route, message=message,
                                                 request_type=request_type, tenacious=tenacious)
        future, answer, command_type = started
        return self._settle(future, answer, command_type, app_route, request_type)

    async def send_request_async(self, app_route: str, message: Any, request_type: str,
                                 tenacious: bool = True) -> Tuple[int, Any]:
        """``send_request`` for asyncio callers (Jobmon's newer swarm and heartbeat)."""
        started = self._start(app_route, message, request_type, tenacious)
        if started is None:
            fallback = self._fallback()
            if hasattr(fallback, "send_request_async"):
                return await fallback.send_request_async(app_route=app_route, message=message,
                                                         request_type=request_type, tenacious=tenacious)
            return await asyncio.get_running_loop().run_in_executor(
                None, lambda: fallback.send_request(app_route=app_route, message=message,
                                                    request_type=request_type, tenacious=tenacious))
        future, answer, command_type = started
        try:
            await asyncio.wrap_future(future)
        except (CommandRejected, CommandTimeout):
            pass  # raised again, in Jobmon's form, by _settle
        return self._settle(future, answer, command_type, app_route, request_type)

    def _start(self, app_route: str, message: Any, request_type: str, tenacious: bool):
        route = app_route.split("?", 1)[0].rstrip("/")
        if route.startswith("/api/v3/"):
            route = route[len("/api/v3"):]
        for method, pattern, build in ROUTES:
            match = pattern.fullmatch(route)
            if match and method == request_type.lower():
                command_type, payload, answer = build(message or {}, *match.groups())
                deadline = None if tenacious else self.client.attempt_timeout
                future = self.client.send(command_type, deadline=deadline, **payload)
                return future, answer, command_type
        return None

    def _fallback(self):
        if self.fallback is None:
            raise RouteNotServed("arrayfsm does not serve this route and KafkaRequester has no fallback requester")
        return self.fallback

    @staticmethod
    def _settle(future: Future, answer, command_type: str, app_route: str, request_type: str) -> Tuple[int, Any]:
        try:
            result = future.result()
        except CommandRejected as rejected:
            status = STATUS_BY_CODE.get(rejected.code, 400)
            content = {"error": {"code": rejected.code, "message": rejected.message}}
            if status >= 500:
                raise InvalidResponse(
                    f"Request failed due to status code {status} from {request_type.upper()} request through "
                    f"route {app_route}. Response content: {content}") from rejected
            error = InvalidRequest(
                f"Client error with status code {status} from {request_type.upper()} request through route "
                f"{app_route}. Response content: {content}")
            error.status_code = status  # type: ignore[attr-defined]
            raise error from rejected
        except CommandTimeout as timeout:
            raise InvalidResponse(f"{request_type.upper()} {app_route} ({command_type}): {timeout}") from timeout
        return 200, answer(result)
