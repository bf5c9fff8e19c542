"""Registering TicketService so that an undecodable request is the caller's error.

grpcio calls a handler's request deserializer before any interceptor or handler runs; when it
raises, grpcio logs an ERROR with a traceback and answers INTERNAL "Exception deserializing
request!", and the call never reaches the interceptors that log and count calls. So the
deserializers registered here never raise: bytes that do not parse (a string field that is not
UTF-8, a truncated message) become an `Undecodable` value, and the handler answers it with
INVALID_ARGUMENT, inside the interceptors like any other bad request.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import message

from slawatch.v1 import ticket_service_pb2 as pb

SERVICE = pb.DESCRIPTOR.services_by_name["TicketService"]


@dataclass(frozen=True)
class Undecodable:
    """A request message that did not parse, in place of the message."""

    type_name: str
    reason: str


def _lenient(cls: type[message.Message]) -> Callable[[bytes], Any]:
    type_name = cls.DESCRIPTOR.full_name

    def decode(data: bytes) -> Any:
        try:
            return cls.FromString(data)
        except message.DecodeError as err:
            return Undecodable(type_name, str(err))

    return decode


def _refusing_undecodable(behavior: Callable[..., Any]) -> Callable[..., Any]:
    # A plain function serves streaming handlers too: grpcio calls it for the iterator, and an
    # abort raised by the call itself ends the stream with that status.
    def call(request: Any, context: grpc.ServicerContext) -> Any:
        if isinstance(request, Undecodable):
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"request is not a valid {request.type_name} message: {request.reason}",
            )
        return behavior(request, context)

    return call


def add_ticket_service(servicer: object, server: grpc.Server) -> None:
    """What the generated `add_TicketServiceServicer_to_server` does, with lenient decoding."""
    handlers: dict[str, grpc.RpcMethodHandler] = {}
    for name, method in SERVICE.methods_by_name.items():
        request_cls = getattr(pb, method.input_type.name)
        response_cls = getattr(pb, method.output_type.name)
        assert not method.client_streaming, "TicketService has no client-streaming RPC"
        make = (
            grpc.unary_stream_rpc_method_handler
            if method.server_streaming
            else grpc.unary_unary_rpc_method_handler
        )
        handlers[name] = make(
            _refusing_undecodable(getattr(servicer, name)),
            request_deserializer=_lenient(request_cls),
            response_serializer=response_cls.SerializeToString,
        )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE.full_name, handlers),)
    )
    server.add_registered_method_handlers(SERVICE.full_name, handlers)
