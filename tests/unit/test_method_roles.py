"""Every TicketService RPC has its roles; an RPC missing from the map is refused, not a crash."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from internal.config.tokens import Authenticator
from internal.rpc import auth
from slawatch.v1 import ticket_service_pb2 as pb


def test_every_rpc_of_the_service_descriptor_has_roles() -> None:
    service = pb.DESCRIPTOR.services_by_name["TicketService"]
    assert set(service.methods_by_name) <= set(auth.METHOD_ROLES)


class Details(grpc.HandlerCallDetails):
    def __init__(self, method: str) -> None:
        self.method = method
        self.invocation_metadata = ()


class Aborted(Exception):
    pass


class Context:
    def __init__(self) -> None:
        self.code: grpc.StatusCode | None = None

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.code = code
        raise Aborted(details)


@pytest.fixture
def unmapped_rpc(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    roles = dict(auth.METHOD_ROLES)
    del roles["GetTicket"]
    monkeypatch.setattr(auth, "METHOD_ROLES", roles)
    yield auth.SERVICE_PREFIX + "GetTicket"


def test_an_rpc_missing_from_the_map_is_permission_denied(unmapped_rpc: str) -> None:
    """A new RPC added to the proto but not to METHOD_ROLES: refused for every caller, even in
    development mode, instead of a KeyError in the interceptor."""
    served = grpc.unary_unary_rpc_method_handler(lambda request, context: "served")
    interceptor = auth.AuthInterceptor(Authenticator({}, insecure_dev=True))
    handler = interceptor.intercept_service(lambda details: served, Details(unmapped_rpc))
    assert handler is not None and handler.unary_unary is not None
    context = Context()
    with pytest.raises(Aborted, match="no roles"):
        handler.unary_unary(None, context)
    assert context.code == grpc.StatusCode.PERMISSION_DENIED
