"""The pipeline, wired in one place: the chain of steps, the check that every input is made by an earlier step,
and the runner (progress per step, resume after the last completed step, a summary with timings)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from core.errors import RadPlanError
from core.pipeline.context import PipelineContext, StepError
from core.pipeline.runs import RunRecord, complete_step, fail_run, finish_run, latest_run, start_run
from core.pipeline.steps import (
    NlpStep,
    PdfStep,
    PlanStep,
    RadiomicsStep,
    RetrieveStep,
    RulesStep,
    ScoresStep,
    SegmentStep,
    SelectCtStep,
    SendStep,
    Step,
    StructuresStep,
)
from core.security.roles import Permission

__all__ = ["PIPELINE", "RunSummary", "check_graph", "run_pipeline"]

log = logging.getLogger(__name__)

#: retrieve -> select CT -> segmentation (engine worker) -> AI structures -> radiomics -> NLP of the note ->
#: model scores -> rule base -> draft plan (DVH with an RT Dose) -> PDF -> optional C-STORE back to the PACS.
PIPELINE: tuple[Step, ...] = (
    RetrieveStep(),
    SelectCtStep(),
    SegmentStep(),
    StructuresStep(),
    RadiomicsStep(),
    NlpStep(),
    ScoresStep(),
    RulesStep(),
    PlanStep(),
    PdfStep(),
    SendStep(),
)


def check_graph(steps: Sequence[Step] = PIPELINE) -> None:
    """Every step's inputs are outputs of an earlier step, and names are unique; ValueError otherwise."""
    made: set[str] = set()
    names: set[str] = set()
    for step in steps:
        if step.name in names:
            raise ValueError(f"two steps are called {step.name!r}")
        names.add(step.name)
        missing = [i for i in step.inputs if i not in made]
        if missing:
            raise ValueError(f"step {step.name!r} reads {', '.join(missing)}, which no earlier step makes")
        made.update(step.outputs)


check_graph()


@dataclass(frozen=True)
class RunSummary:
    """What a run did: its id, status, per-step seconds (None: done by an earlier attempt), the outputs."""

    run_id: int
    study_uid: str
    status: str
    seconds: dict[str, float | None]
    resumed: tuple[str, ...]
    outputs: dict[str, Any] = field(default_factory=dict)
    failed_step: str = ""
    error: str = ""
    #: The study's latest run had finished: nothing was run again (use fresh=True for a new run).
    already_done: bool = False

    @property
    def total_s(self) -> float:
        return sum(v for v in self.seconds.values() if v is not None)

    @property
    def recommendation(self) -> dict[str, Any] | None:
        rec = self.outputs.get("recommendation")
        return rec if isinstance(rec, dict) else None

    @property
    def pdf(self) -> str | None:
        value = self.outputs.get("pdf")
        return str(value) if value else None


def _json(outputs: Mapping[str, Any]) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(json.dumps(dict(outputs), default=str))
    return loaded


def run_pipeline(ctx: PipelineContext, *, steps: Sequence[Step] = PIPELINE, fresh: bool = False) -> RunSummary:
    """Run (or resume) the pipeline for ``ctx.study_uid``. A failed step ends the run as failed and raises
    StepError (what the completed steps made stays; running again resumes with the failed step). When the study's
    latest run is done, nothing runs again and its summary is returned (``fresh``: a new run)."""
    check_graph(steps)
    access = ctx.access(Permission.RUN_ANALYSIS)
    latest = latest_run(ctx.store, ctx.study_uid)
    if latest is not None and latest.status == "done" and not fresh:  # nothing to do: the finished run's results
        earlier = {k: v for s in steps if s.name in latest.steps for k, v in latest.steps[s.name].outputs.items()}
        none: dict[str, float | None] = {s.name: None for s in steps}
        return RunSummary(latest.run_id, ctx.study_uid, "done", none, tuple(none), earlier, already_done=True)
    run: RunRecord = start_run(ctx.store, access, ctx.study_uid, ctx.source, ctx.options.to_json(), fresh=fresh)
    ctx = replace(ctx, run_id=run.run_id)
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    values: dict[str, Any] = {}
    seconds: dict[str, float | None] = {}
    resumed: list[str] = []
    for position, step in enumerate(steps):
        done = run.steps.get(step.name)
        if done is not None:
            values.update(done.outputs)
            seconds[step.name] = None
            resumed.append(step.name)
            ctx.progress(step.name, 1.0, "done earlier (resumed)")
            continue
        ctx.progress(step.name, 0.0, step.title)
        start = time.perf_counter()
        try:
            outputs = _json(step.run(ctx, {name: values[name] for name in step.inputs}))
            missing = [o for o in step.outputs if o not in outputs]
            if missing:
                raise StepError(step.name, f"step {step.name} did not produce {', '.join(missing)} (a bug)")
        except RadPlanError as exc:
            error = str(exc)
            fail_run(ctx.store, access, run, step.name, error)
            raise StepError(step.name, f"step '{step.name}' failed: {error}") from exc
        except Exception as exc:
            log.exception("pipeline step %s", step.name)
            error = f"{type(exc).__name__}: {exc}"
            fail_run(ctx.store, access, run, step.name, error)
            raise StepError(step.name, f"step '{step.name}' failed: {error}") from exc
        elapsed = time.perf_counter() - start
        complete_step(ctx.store, access, run, step.name, position, outputs, elapsed)
        values.update(outputs)
        seconds[step.name] = elapsed
        ctx.progress(step.name, 1.0, f"done in {elapsed:.1f} s")
    rec = values.get("recommendation")
    summary = {
        "seconds": {k: round(v, 3) for k, v in seconds.items() if v is not None},
        "resumed": resumed,
        "plan_id": values.get("plan_id"),
        "recommendation": rec.get("rule_ids") if isinstance(rec, dict) else None,
    }
    finish_run(ctx.store, access, run, summary)
    return RunSummary(run.run_id, ctx.study_uid, "done", seconds, tuple(resumed), values)
