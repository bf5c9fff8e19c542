"""SLA config files for tests, in the shape of DESIGN §5."""

from __future__ import annotations

from pathlib import Path

import yaml

from support.config_schema import assert_agreement

BASE: dict[str, object] = {
    "escalation": [
        {"at_percent": 85, "level": 1, "kind": "warning", "notify": ["team"]},
        {"at_percent": 95, "level": 2, "kind": "warning", "notify": ["team", "lead"]},
        {"at_percent": 100, "level": 3, "kind": "breach", "notify": ["lead"]},
        {"at_percent": 150, "level": 4, "kind": "breach", "notify": ["manager"]},
    ],
    "pause_statuses": ["on_hold"],
    "calendars": {
        "emea_office": {
            "timezone": "Europe/Berlin",
            "hours": {d: "09:00-17:00" for d in ("mon", "tue", "wed", "thu", "fri")},
            "holidays": ["2026-12-25", "2026-12-26"],
        }
    },
    "channels": {
        "team": {"slack_webhook_env": "SLACK_WEBHOOK_URL"},
        "lead": {"slack_webhook_env": "SLACK_WEBHOOK_URL_LEAD"},
        "manager": {"slack_webhook_env": "SLACK_WEBHOOK_URL_MANAGER"},
    },
    "policies": {
        "high": {
            "gold": {"response": "15m", "resolution": "4h"},
            "silver": {"response": "30m", "resolution": "8h", "calendar": "emea_office"},
        },
        "low": {
            "gold": {"response": "1h", "resolution": "12h"},
            "silver": {"response": "2h", "resolution": "24h"},
        },
    },
}


def config_text(**overrides: object) -> str:
    """BASE with `overrides`, as YAML. Every config a test writes through here is also checked
    against deploy/schema/sla_config.schema.json: schema and loader agree on it."""
    doc = dict(BASE)
    doc.update(overrides)
    text = yaml.safe_dump(doc, sort_keys=False)
    assert_agreement(text)
    return text


def write_config(path: Path, **overrides: object) -> Path:
    path.write_text(config_text(**overrides))
    return path
