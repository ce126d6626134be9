"""The chain is wired in one place and every step's inputs come from an earlier step."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from core.pipeline.context import PipelineContext
from core.pipeline.graph import PIPELINE, check_graph
from core.pipeline.steps import STEPS, Step


def test_the_chain_is_in_the_issue_order_and_holds_every_step() -> None:
    names = [s.name for s in PIPELINE]
    assert names == ["retrieve", "select_ct", "segment", "structures", "radiomics", "nlp", "scores", "rules", "plan",
                     "pdf", "send"]  # fmt: skip
    assert {type(s) for s in PIPELINE} == set(STEPS)
    check_graph(PIPELINE)


class _Reads(Step):
    name, title, inputs, outputs = "reads", "reads what nobody makes", ("nothing",), ("x",)

    def run(self, ctx: PipelineContext, inputs: Mapping[str, Any]) -> dict[str, Any]:
        return {"x": 1}


def test_a_step_reading_what_no_earlier_step_makes_is_refused() -> None:
    with pytest.raises(ValueError, match="reads nothing"):
        check_graph([*PIPELINE[:2], _Reads()])
    with pytest.raises(ValueError, match="two steps"):
        check_graph([PIPELINE[0], PIPELINE[0]])
