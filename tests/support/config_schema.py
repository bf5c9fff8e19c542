"""deploy/schema/sla_config.schema.json against the loader: for any file, both accept it or both
refuse it, except where the loader checks what a JSON Schema cannot say (the schema's own
description lists these: references to calendars, channels and metrics, the ladder's order, time
zones, empty or overlapping hours, the 3650d bound of duration strings)."""

from __future__ import annotations

import json
import math
import re
from datetime import date, datetime
from functools import cache
from typing import Any

import yaml
from jsonschema import Draft202012Validator

from internal.config.sla_config import ConfigError, parse_config
from support.env import ROOT

SCHEMA = ROOT / "deploy" / "schema" / "sla_config.schema.json"

# Loader errors the schema cannot foresee, each with why.
BEYOND_SCHEMA = {
    "a policy names a calendar that is not defined": re.compile(r"\.calendar: unknown calendar"),
    "a step notifies a channel that is not defined": re.compile(r"\.notify: unknown channel"),
    "a channel's quiet hours name a calendar that is not defined": re.compile(
        r"\.quiet_hours: unknown calendar"
    ),
    # A schema cannot compare a policy's keys with the names under `metrics`.
    "a policy has a target for a metric that is not defined": re.compile(
        r"a target for a metric that is not defined under metrics"
    ),
    "the ladder does not ascend": re.compile(r"steps must ascend"),
    # JSON Schema's uniqueItems compares whole items, not one key of them.
    "two ordered policies have one name": re.compile(r"\.name: .* names an earlier policy too"),
    "no such time zone": re.compile(r"timezone: unknown time zone"),
    "an empty, inverted or overlapping range": re.compile(r'" (is empty|is inverted|overlaps ")'),
    "a duration string over 3650d": re.compile(r"at most 3650d"),
    # YAML tells 2 from 2.0; JSON, and so the schema, does not.
    "a level written as a float": re.compile(
        r"\.(quiet_min_)?level: expected an integer .*, got \d+\.0$"
    ),
}


class NotJson(ValueError):
    """A YAML value JSON has no equivalent for (so no editor's schema check sees it)."""


@cache
def validator() -> Draft202012Validator:
    schema = json.loads(SCHEMA.read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def json_view(value: Any) -> Any:
    """`value` as an editor's schema check sees the YAML: dates are strings."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        raise NotJson(f"the number {value}")
    if isinstance(value, list):
        return [json_view(v) for v in value]
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise NotJson(f"the mapping key {key!r}")
        return {k: json_view(v) for k, v in value.items()}
    return value


def schema_errors(document: Any, schema: Draft202012Validator | None = None) -> list[str]:
    errors = (schema or validator()).iter_errors(document)
    return [f"{e.json_path}: {e.message}" for e in sorted(errors, key=lambda e: list(e.path))]


def disagreement(text: str | bytes, schema: Draft202012Validator | None = None) -> str | None:
    """None when the loader and the schema (deploy's unless given) agree on the file `text`,
    else how they differ."""
    try:
        parse_config(text)
        refused: str | None = None
    except ConfigError as err:
        refused = str(err)
    try:
        document = json_view(yaml.safe_load(text))
    except yaml.YAMLError:
        return None if refused else "the loader accepts a file that is not YAML"
    except NotJson as err:
        return None if refused else f"the loader accepts {err}, which JSON cannot express"
    errors = schema_errors(document, schema)
    if refused is None:
        return f"the loader accepts, the schema refuses: {errors}" if errors else None
    if errors or any(p.search(refused) for p in BEYOND_SCHEMA.values()):
        return None
    return f"the loader refuses ({refused}), the schema accepts"


def assert_agreement(text: str | bytes) -> None:
    problem = disagreement(text)
    assert problem is None, f"{problem}\n--- the file:\n{text!r}"
