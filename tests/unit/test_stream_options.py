"""StreamOptions from the environment: malformed or out-of-range values name the variable."""

from __future__ import annotations

import pytest

from internal.config.settings import SettingsError
from internal.rpc.alert_stream import StreamOptions


def test_unset_values_keep_the_defaults_and_set_ones_are_read() -> None:
    assert StreamOptions.from_env({}) == StreamOptions()
    got = StreamOptions.from_env(
        {
            "SLAWATCH_MAX_STREAMS": "20",
            "SLAWATCH_MAX_STREAMS_PER_TENANT": "5",
            "SLAWATCH_STREAM_QUEUE_SIZE": "300",
            "SLAWATCH_STREAM_POLL_SECONDS": "0.5",
        }
    )
    assert (got.max_streams, got.max_streams_per_tenant, got.queue_size, got.poll_interval) == (
        20,
        5,
        300,
        0.5,
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SLAWATCH_MAX_STREAMS", "many"),
        ("SLAWATCH_MAX_STREAMS", "-1"),
        ("SLAWATCH_MAX_STREAMS", "1.5"),
        ("SLAWATCH_MAX_STREAMS_PER_TENANT", "0"),
        ("SLAWATCH_STREAM_QUEUE_SIZE", "-100"),
        ("SLAWATCH_STREAM_POLL_SECONDS", "nan"),
        ("SLAWATCH_STREAM_POLL_SECONDS", "-2"),
    ],
)
def test_a_bad_value_is_a_settings_error_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        StreamOptions.from_env({name: value})
