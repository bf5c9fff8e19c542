"""The size of a BadRequest answer is bounded whatever the violations say."""

from __future__ import annotations

from internal.rpc.errors import MAX_DETAIL_BYTES, MAX_VIOLATIONS, capped, summary
from internal.rpc.validation import Violation


def test_long_descriptions_are_clipped_and_the_rest_counted() -> None:
    """Violations with 10,000-character descriptions: what is shown stays within the byte budget,
    and the count of the left-out ones makes up the total."""
    many = [Violation(f"events[{i}].priority", "é" * 10_000) for i in range(500)]
    shown, left_out = capped(many)
    assert 0 < len(shown) <= MAX_VIOLATIONS
    assert sum(len(v.field.encode()) + len(v.description.encode()) for v in shown) <= (
        MAX_DETAIL_BYTES
    )
    assert len(shown) + left_out == 500
    assert summary(shown, 500).endswith(f"(and {500 - 5} more)")


def test_a_few_violations_are_all_shown() -> None:
    few = [Violation("ticket_id", "required"), Violation("priority", "required")]
    assert capped(few) == (few, 0)
    assert summary(few, 2) == "ticket_id: required; priority: required"
