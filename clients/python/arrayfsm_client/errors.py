"""What a command can end in besides its result."""

from __future__ import annotations


class ArrayFSMError(Exception):
    """Base of the client's errors."""


class CommandRejected(ArrayFSMError):
    """serve answered the command ``rejected``: nothing was applied.

    ``code`` is the contract's error code (``invalid_argument``, ``not_found``,
    ``batch_not_found``, ``tasks_not_in_array``, ``command_id_reused``, ``database_error``, …;
    the set is open: treat an unknown code as a refusal); ``message`` says why.
    """

    def __init__(self, code: str, message: str, command_id: str, command_type: str) -> None:
        super().__init__(f"{command_type} {command_id} rejected: {code}: {message}")
        self.code = code
        self.message = message
        self.command_id = command_id
        self.command_type = command_type


class CommandTimeout(ArrayFSMError):
    """No answer came before the deadline, after re-sending the same command (same id and
    bytes) every attempt timeout. The command may still be applied later, exactly once; sending
    it again with the same ``command_id`` gets its answer."""

    def __init__(self, command_id: str, command_type: str, attempts: int, waited: float) -> None:
        super().__init__(
            f"{command_type} {command_id}: no answer after {waited:.1f} s and {attempts} sends; "
            "is serve running and consuming the commands topic?")
        self.command_id = command_id
        self.command_type = command_type
        self.attempts = attempts
        self.waited = waited
