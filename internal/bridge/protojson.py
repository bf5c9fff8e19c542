"""proto3's JSON mapping for the HTTP/JSON routes (google.protobuf.json_format), both ways.

Output uses the proto field names (`ticket_id`), exactly as grpcurl prints them, enums by name,
timestamps in RFC 3339, durations as "900s", 64-bit integers as strings. Fields without presence
are always written, zero values too (`"count": "0"`, `"paused": false`, `"alerts": []`), so that an
HTTP client sees every field; a message field that is unset (a stopped clock's `due_at`) is left
out.
Input accepts the proto names and the lowerCamelCase JSON names alike; an unknown field, a wrong
type or an unknown enum name is refused (BadJson) rather than dropped, so that a misspelt field
of a webhook never turns into a silently empty one.

Everything is driven by the message descriptors: fields added to the .proto need no code here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, TypeVar, cast

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from multidict import MultiMapping

M = TypeVar("M", bound=Message)

# Message-typed fields whose JSON form is one string, so that a query parameter can carry them.
QUERY_MESSAGE_TYPES = frozenset(
    {"google.protobuf.Timestamp", "google.protobuf.Duration", "google.protobuf.FieldMask"}
)
# json_format nests its messages ("Failed to parse events field: Failed to parse status field:
# ..."); the field names of the chain and the innermost message say what is wrong and where.
_NESTED = re.compile(r"Failed to parse (\w+) field: ")


class BadJson(ValueError):
    """The body or query is not the request message in proto3 JSON; the text says why."""


def _parse_error_text(err: Exception) -> str:
    text = str(err).split("\n", 1)[0]
    fields: list[str] = []
    while (nested := _NESTED.match(text)) is not None:
        fields.append(nested.group(1))
        text = text[nested.end() :]
    text = text.rstrip(".") or type(err).__name__
    return f"{'.'.join(fields)}: {text}" if fields else text


def _parse_dict(data: dict[str, Any], message: M) -> M:
    try:
        json_format.ParseDict(data, message, ignore_unknown_fields=False)
    except (json_format.ParseError, ValueError, TypeError, RecursionError) as err:
        raise BadJson(_parse_error_text(err)) from None
    return message


def parse_body(raw: bytes, message: M, path_params: Mapping[str, str] | None = None) -> M:
    """`message` filled from a JSON body and the path's parameters (a field in both is refused)."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise BadJson(f"the body is not UTF-8 (byte {err.start})") from None
    except json.JSONDecodeError as err:
        where = f"line {err.lineno} column {err.colno}"
        raise BadJson(f"the body is not JSON: {err.msg} at {where}") from None
    except RecursionError:
        raise BadJson("the body is not JSON: nested too deeply") from None
    if not isinstance(data, dict):
        raise BadJson(f"the body must be a JSON object ({message.DESCRIPTOR.name}), not an array")
    if path_params:
        descriptor = cast(Descriptor, message.DESCRIPTOR)
        for key in data:
            field = query_field(descriptor, key)
            if field is not None and field.name in path_params:
                raise BadJson(f"body field {key!r}: the field {field.name!r} is given in the path")
        data = {**data, **path_params}
    return _parse_dict(data, message)


def query_field(descriptor: Descriptor, name: str) -> FieldDescriptor | None:
    """The field a query parameter or path segment names (proto or JSON name), if it is one."""
    field = descriptor.fields_by_name.get(name)
    if field is not None:
        return field
    return next((f for f in descriptor.fields if f.json_name == name), None)


def query_settable(field: FieldDescriptor) -> bool:
    """Whether a field can be given in a URL: scalars, enums, and lists of them."""
    if field.message_type is None:
        return True
    return field.message_type.full_name in QUERY_MESSAGE_TYPES


def _query_value(field: FieldDescriptor, value: str) -> Any:
    if field.type == FieldDescriptor.TYPE_BOOL:
        if value not in ("true", "false"):
            raise BadJson(f"query parameter {field.name!r}: expected true or false, got {value!r}")
        return value == "true"
    # Numbers, enum names and well-known types are strings in proto3 JSON already.
    return value


def parse_query(query: MultiMapping[str], path_params: Mapping[str, str], message: M) -> M:
    """`message` filled from the path's parameters and the query string (a MultiDict): one
    parameter per field, repeated for a list (`?states=SLA_STATE_BREACHED&states=...`)."""
    descriptor = cast(Descriptor, message.DESCRIPTOR)
    data: dict[str, Any] = {}
    for key in dict.fromkeys(query.keys()):
        field = query_field(descriptor, key)
        if field is None:
            raise BadJson(f"unknown query parameter {key!r} ({descriptor.name} has no such field)")
        if field.name in data or field.name in path_params:
            raise BadJson(f"query parameter {key!r}: the field {field.name!r} is given twice")
        if not query_settable(field):
            raise BadJson(f"query parameter {key!r}: a message field cannot be set in the query")
        values = [_query_value(field, v) for v in query.getall(key)]
        if field.is_repeated:
            data[field.name] = values
        elif len(values) > 1:
            raise BadJson(f"query parameter {key!r}: one value expected, got {len(values)}")
        else:
            data[field.name] = values[0]
    data.update(path_params)
    return _parse_dict(data, message)


def to_dict(message: Message) -> dict[str, Any]:
    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def to_json(message: Message) -> bytes:
    return json.dumps(to_dict(message), ensure_ascii=False).encode()
