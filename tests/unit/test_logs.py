"""JSON log lines and the correlation id in them."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from internal.obs.correlation import MAX_LENGTH, accept, correlation, current_correlation_id
from internal.obs.logs import CorrelationFilter, JsonFormatter


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(CorrelationFilter())
    logger = logging.getLogger(f"test.logs.{id(stream)}")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_line_is_one_json_object_with_the_common_fields_and_extras(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    """Extras become fields of their own; fields without a value are left out, not null."""
    logger, stream = captured
    logger.info(
        "alert %d raised", 7, extra={"alert_id": 7, "ticket_id": "T-1", "correlation_id": None}
    )
    (line,) = lines(stream)
    assert line["message"] == "alert 7 raised"
    assert line["level"] == "INFO"
    assert line["logger"] == logger.name
    assert str(line["timestamp"]).endswith("+00:00")
    assert line["alert_id"] == 7 and line["ticket_id"] == "T-1"
    assert "correlation_id" not in line


def test_the_current_correlation_id_is_added_unless_the_line_names_its_own(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    """Lines written inside `correlation()` carry its id; a line about one alert keeps the id of
    the call behind that alert; after the block, lines carry none."""
    logger, stream = captured
    with correlation("tick-42"):
        logger.info("evaluated")
        logger.info("alert", extra={"correlation_id": "req-1"})
    logger.info("outside")
    first, second, third = lines(stream)
    assert first["correlation_id"] == "tick-42"
    assert second["correlation_id"] == "req-1"
    assert "correlation_id" not in third
    assert current_correlation_id.get() is None


def test_exceptions_are_kept_in_the_line(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("failed")
    (line,) = lines(stream)
    assert "ValueError: boom" in str(line["exception"])


@pytest.mark.parametrize(
    "given",
    ["req-1", "0f8b2c1e-7d6a-4c55-9a0e-3f1b2d4c5e6f", "svc/ingest:42@eu+retry=1", "a" * MAX_LENGTH],
)
def test_usable_request_ids_are_kept(given: str) -> None:
    assert accept(given) == given


@pytest.mark.parametrize(
    "given",
    ["", "a" * (MAX_LENGTH + 1), "has space", "new\nline", "<script>", "-leading-dash", "é"],
)
def test_unusable_request_ids_are_replaced(given: str) -> None:
    """They would end up in logs, the database and Slack's mrkdwn: the caller gets a fresh id."""
    assert accept(given) is None
