"""A bad set of capabilities is refused with every problem, each naming its field and what is allowed."""

from __future__ import annotations

import pytest

from translation.capabilities import CapabilityError, CapabilityProblem, capabilities_build


def test_every_bad_field_is_a_problem_of_one_error() -> None:
    with pytest.raises(CapabilityError) as excinfo:
        capabilities_build(preset="vllm", overrides={
            "prefill": "sometimes", "max_tokens_cap": "lots", "top_k": "yes", "images": "pass"})
    assert [p.field for p in excinfo.value.problems] == ["prefill", "max_tokens_cap", "top_k"]
    assert excinfo.value.problems[2] == CapabilityProblem("top_k", '"yes" is not true or false')
    assert str(excinfo.value).count("; ") == 2


def test_an_unknown_field_suggests_the_nearest_capability() -> None:
    with pytest.raises(CapabilityError) as excinfo:
        capabilities_build(overrides={"prefil_echo": True, "colour": "teal"})
    first, second = excinfo.value.problems
    assert first.message == "unknown field (did you mean prefill_echo?)"
    assert second.field == "colour" and second.message.startswith("unknown field (")


def test_a_bad_object_or_list_value_is_named_by_its_type_not_quoted() -> None:
    # extra_headers and extra_body carry tokens: a message must not repeat what they hold.
    with pytest.raises(CapabilityError) as excinfo:
        capabilities_build(overrides={"extra_body": ["sk-SECRET"], "thinking_control": {"t": "sk-SECRET"}})
    assert "SECRET" not in str(excinfo.value)
    assert [p.message for p in excinfo.value.problems] == [
        "a list is not a JSON object", "an object is not a string"]


def test_an_unknown_preset_is_a_problem_of_the_preset_field() -> None:
    with pytest.raises(CapabilityError) as excinfo:
        capabilities_build(preset="vllm-ish")
    assert excinfo.value.problems[0].field == "preset"
