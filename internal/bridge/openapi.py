"""The OpenAPI 3.1 document of the /v1 routes, built from the routes table and the proto
descriptors: a field added to the .proto appears in it, a route added to the table too, so the
document cannot drift from what the bridge serves.

Schemas describe what the bridge writes (internal/bridge/protojson.py): proto field names,
enums by name, 64-bit integers as strings, Timestamp as RFC 3339, Duration as "900s". Input also
accepts the lowerCamelCase JSON names, 64-bit integers as numbers and enums by number, as proto3
JSON does. OpenAPI 3.1's schemas are JSON Schema 2020-12, so a JSON Schema validator checks
answers against them as they stand.
"""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor

from internal.bridge import protojson
from internal.bridge.http_api import OPENAPI_PATH, ROUTES, Route
from internal.bridge.http_errors import HTTP_STATUS
from slawatch import __version__

Schema = dict[str, Any]
F = FieldDescriptor

_INT32 = {"type": "integer", "format": "int32"}
_INT64 = {"type": ["string", "integer"], "format": "int64", "pattern": "^-?[0-9]+$"}
_UINT32 = {"type": "integer", "format": "int32", "minimum": 0}
_UINT64 = {"type": ["string", "integer"], "format": "int64", "pattern": "^[0-9]+$", "minimum": 0}
_FLOAT = {"type": ["number", "string"]}  # "NaN", "Infinity", "-Infinity" are strings
SCALARS: dict[int, Schema] = {
    F.TYPE_DOUBLE: _FLOAT,
    F.TYPE_FLOAT: _FLOAT,
    F.TYPE_INT32: _INT32,
    F.TYPE_SINT32: _INT32,
    F.TYPE_SFIXED32: _INT32,
    F.TYPE_UINT32: _UINT32,
    F.TYPE_FIXED32: _UINT32,
    F.TYPE_INT64: _INT64,
    F.TYPE_SINT64: _INT64,
    F.TYPE_SFIXED64: _INT64,
    F.TYPE_UINT64: _UINT64,
    F.TYPE_FIXED64: _UINT64,
    F.TYPE_BOOL: {"type": "boolean"},
    F.TYPE_STRING: {"type": "string"},
    F.TYPE_BYTES: {"type": "string", "contentEncoding": "base64"},
}
WELL_KNOWN: dict[str, Schema] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]{1,9})?s$"},
    "google.protobuf.FieldMask": {"type": "string"},
    "google.protobuf.Struct": {"type": "object"},
    "google.protobuf.Value": {},
    "google.protobuf.ListValue": {"type": "array"},
    "google.protobuf.Empty": {"type": "object", "additionalProperties": False},
    "google.protobuf.Any": {
        "type": "object",
        "properties": {"@type": {"type": "string"}},
        "required": ["@type"],
    },
}
WRAPPERS = {
    "google.protobuf.DoubleValue": F.TYPE_DOUBLE,
    "google.protobuf.FloatValue": F.TYPE_FLOAT,
    "google.protobuf.Int64Value": F.TYPE_INT64,
    "google.protobuf.UInt64Value": F.TYPE_UINT64,
    "google.protobuf.Int32Value": F.TYPE_INT32,
    "google.protobuf.UInt32Value": F.TYPE_UINT32,
    "google.protobuf.BoolValue": F.TYPE_BOOL,
    "google.protobuf.StringValue": F.TYPE_STRING,
    "google.protobuf.BytesValue": F.TYPE_BYTES,
}
ERROR_SCHEMA: Schema = {
    "type": "object",
    "description": (
        "A refused call: the gRPC status code's name, its message, and the google.rpc details"
        " (BadRequest field violations, ErrorInfo, RetryInfo) in proto3 JSON."
    ),
    "properties": {
        "code": {"type": "string", "enum": [c.name for c in grpc.StatusCode if c.name != "OK"]},
        "message": {"type": "string"},
        "details": {"type": "array", "items": WELL_KNOWN["google.protobuf.Any"]},
    },
    "required": ["code", "message", "details"],
    "additionalProperties": False,
}


def schema_ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


class _Schemas:
    """Component schemas of every message and enum reachable from the routes."""

    def __init__(self) -> None:
        self.components: dict[str, Schema] = {"Error": ERROR_SCHEMA}

    def message(self, descriptor: Descriptor) -> Schema:
        name = descriptor.full_name
        if name in WELL_KNOWN:
            return dict(WELL_KNOWN[name])
        if name in WRAPPERS:
            return dict(SCALARS[WRAPPERS[name]])
        if name not in self.components:
            self.components[name] = {}  # placed first: a message may refer to itself
            self.components[name] = {
                "type": "object",
                "properties": {f.name: self.field(f) for f in descriptor.fields},
                "additionalProperties": False,
            }
        return schema_ref(name)

    def enum(self, descriptor: EnumDescriptor) -> Schema:
        name = descriptor.full_name
        self.components.setdefault(
            name, {"type": "string", "enum": [v.name for v in descriptor.values]}
        )
        return schema_ref(name)

    def single(self, field: FieldDescriptor) -> Schema:
        if field.enum_type is not None:
            return self.enum(field.enum_type)
        if field.message_type is not None:
            return self.message(field.message_type)
        return dict(SCALARS[field.type])

    def field(self, field: FieldDescriptor) -> Schema:
        message = field.message_type
        if message is not None and message.GetOptions().map_entry:
            value = message.fields_by_name["value"]
            return {"type": "object", "additionalProperties": self.single(value)}
        if field.is_repeated:
            return {"type": "array", "items": self.single(field)}
        return self.single(field)


def _parameters(route: Route, schemas: _Schemas) -> list[Schema]:
    params: list[Schema] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": schemas.field(route.request_type.fields_by_name[name]),
        }
        for name in route.path_params
    ]
    if route.body:
        return params
    for field in route.request_type.fields:
        if field.name in route.path_params or not protojson.query_settable(field):
            continue
        param: Schema = {"name": field.name, "in": "query", "schema": schemas.field(field)}
        if field.is_repeated:
            param |= {"style": "form", "explode": True}
        params.append(param)
    return params


def _operation(route: Route, schemas: _Schemas) -> Schema:
    operation: Schema = {
        "operationId": route.rpc,
        "summary": route.summary,
        "description": f"The gRPC call {route.grpc_method}, in proto3 JSON.",
        "parameters": _parameters(route, schemas),
        "responses": {
            "200": {
                "description": route.response_type.name,
                "content": {"application/json": {"schema": schemas.message(route.response_type)}},
            },
            "default": {"$ref": "#/components/responses/Error"},
        },
    }
    if route.body:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": schemas.message(route.request_type)}},
        }
    return operation


def _status_table() -> str:
    by_status: dict[int, list[str]] = {}
    for code, status in HTTP_STATUS.items():
        if code != grpc.StatusCode.OK:
            by_status.setdefault(status, []).append(code.name)
    return "; ".join(f"{s}: {', '.join(names)}" for s, names in sorted(by_status.items()))


def document() -> Schema:
    schemas = _Schemas()
    paths: dict[str, dict[str, Schema]] = {}
    for route in ROUTES:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, schemas)
    paths[OPENAPI_PATH] = {
        "get": {
            "operationId": "OpenApi",
            "summary": "This document",
            "security": [],
            "responses": {
                "200": {
                    "description": "OpenAPI 3.1",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                }
            },
        }
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "slawatch HTTP/JSON API",
            "version": __version__,
            "description": (
                "The unary calls of slawatch.v1.TicketService over HTTP, served by the bridge."
                " Field names are the proto names (lowerCamelCase JSON names are accepted on"
                " input too); an unknown field is refused. Errors carry the gRPC status code"
                " mapped to HTTP (" + _status_table() + "; the bridge itself answers 413 for a"
                " body over SLAWATCH_MAX_MESSAGE_BYTES and 415 for a body that is not JSON)."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": schemas.components,
            "responses": {
                "Error": {
                    "description": "The call was refused; the body says why.",
                    "headers": {
                        "Retry-After": {
                            "description": "Seconds to wait, from the error's RetryInfo.",
                            "schema": {"type": "integer"},
                        }
                    },
                    "content": {"application/json": {"schema": schema_ref("Error")}},
                }
            },
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearerAuth": []}],
    }
