"""The end-to-end pipeline of one study (issue 10): typed steps (steps.py) chained in one place (graph.py), runs and
completed steps in the store for resume (runs.py), cohorts (cohort.py). See docs/pipeline.md."""

from __future__ import annotations
