import pytest

from arrayfsm_client import ArrayFSMClient

from stack import Stack


@pytest.fixture(scope="session")
def stack():
    """One PostgreSQL, broker and serve for the whole session (each test makes arrays of its own)."""
    servers = Stack()
    yield servers
    servers.stop()


@pytest.fixture
def client(stack):
    with ArrayFSMClient(stack.bootstrap_servers, deadline=60) as c:
        yield c
