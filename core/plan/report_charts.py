"""The decision-support sections of the plan PDF: radiomics highlights (IBSI tag, value, unit), model scores (model,
version, probability in %) with one per-feature contribution chart per model (log-odds; red raises the predicted
probability, blue lowers it), and the rules fired with their versions and citations.

Charts are drawn headless with matplotlib's object API (Agg; no pyplot, no GUI backend), as the key images are.
Each section says "not available" when the plan holds no such results.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from matplotlib.figure import Figure
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader
from reportlab.platypus import Image, KeepTogether, Paragraph, Spacer

from core.plan.model import PlanContent

__all__ = ["NEGATIVE_COLOUR", "POSITIVE_COLOUR", "contributions_png", "decision_support_story"]

POSITIVE_COLOUR = "#d62728"  # raises the predicted probability
NEGATIVE_COLOUR = "#1f77b4"  # lowers it
_CHART_WIDTH_MM = 170.0


def _number(value: Any) -> str:
    return f"{float(value):.6g}" if isinstance(value, int | float) and not isinstance(value, bool) else str(value)


def _with_unit(value: Any, unit: str) -> str:
    return f"{_number(value)} {unit}" if unit else f"{_number(value)} (unit not recorded)"


def _percent(value: Any) -> str:
    return f"{100.0 * float(value):.1f} %" if isinstance(value, int | float) else "\u2013"


def contributions_png(model: Mapping[str, Any], dpi: int = 150) -> bytes:
    """Horizontal bar chart (PNG) of a scored model's per-feature contributions in log-odds, largest on top."""
    contributions = list(model.get("contributions") or [])
    rows = sorted(contributions, key=lambda c: abs(float(c["log_odds"])))
    fig = Figure(figsize=(7.0, 1.1 + 0.38 * max(1, len(rows))))
    ax = fig.add_subplot()
    values = [float(c["log_odds"]) for c in rows]
    labels = [f"{c['feature']} = {_with_unit(c['value'], str(c.get('unit', '')))}" for c in rows]
    bars = ax.barh(
        range(len(rows)), values, color=[POSITIVE_COLOUR if v > 0 else NEGATIVE_COLOUR for v in values], height=0.6
    )
    ax.set_yticks(range(len(rows)), labels, fontsize=7.5)
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.bar_label(bars, labels=[f"{v:+.2f}" for v in values], fontsize=7, padding=2)
    span = max([abs(v) for v in values] + [0.1])
    ax.set_xlim(-1.3 * span, 1.3 * span)
    ax.set_xlabel("contribution to the log-odds (log-odds; red raises, blue lowers the probability)", fontsize=8)
    ax.tick_params(axis="x", labelsize=7.5)
    ax.set_title(
        f"{model.get('model')} v{model.get('version')}: probability {_percent(model.get('probability'))} "
        f"(cohort baseline {_percent(model.get('baseline_probability'))})",
        fontsize=9,
    )
    ax.grid(axis="x", linewidth=0.3, alpha=0.5)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()


def _chart(png: bytes) -> Image:
    width, height = ImageReader(io.BytesIO(png)).getSize()
    return Image(io.BytesIO(png), width=_CHART_WIDTH_MM * mm, height=_CHART_WIDTH_MM * mm * height / width)


def decision_support_story(
    c: PlanContent,
    styles: Mapping[str, ParagraphStyle],
    table: Callable[[list[list[Any]], list[float]], Any],
    not_available: Callable[[str], Paragraph],
) -> list[Any]:
    """Flowables of the radiomics, model-score and rules-fired sections (``table(rows, widths_mm)`` makes a table)."""
    p = styles["p"]
    story: list[Any] = [Paragraph("Radiomics highlights", styles["h"])]
    if c.radiomics:
        # printed: the features with a physical unit (morphology, intensity statistics, model inputs); the rest
        # (texture-matrix features and filtered-image features: hundreds) stay in the plan's data, not on paper
        shown = [r for r in c.radiomics if r.get("unit")]
        if shown:
            rows = [["IBSI tag", "Value", "Unit"]]
            rows += [[str(r.get("tag") or r.get("name", "")), _number(r.get("value")), str(r["unit"])] for r in shown]
            story.append(table(rows, [70, 50, 60]))
        text = "Features of the GTV, IBSI definitions (docs/radiomics.md)."
        if len(shown) < len(c.radiomics):
            text += (
                f" {len(c.radiomics) - len(shown)} further features without a physical unit (texture matrices; "
                "LoG- and wavelet-filtered images) are kept with this plan's data and in the Analysis panel's CSV "
                "export; they are not printed."
            )
        story.append(Paragraph(text, p))
    else:
        story.append(not_available("Radiomics"))
    story.append(Paragraph("Model scores and per-feature contributions", styles["h"]))
    if c.model_scores:
        rows = [["Model", "Version", "Probability", "Cohort baseline", "Outcome"]]
        for m in c.model_scores:
            scored = isinstance(m.get("probability"), int | float)
            rows.append(
                [
                    str(m.get("model")),
                    str(m.get("version")),
                    _percent(m["probability"]) if scored else str(m.get("score", "\u2013")),
                    _percent(m.get("baseline_probability")),
                    str(m.get("title") or m.get("outcome") or ""),
                ]
            )
        story.append(table(rows, [30, 18, 24, 24, 84]))
        if any(m.get("demonstration") for m in c.model_scores):
            story.append(Paragraph("Demonstration models trained on synthetic data; not validated on patients.", p))
        for m in c.model_scores:
            if m.get("contributions"):
                story.append(
                    KeepTogether(
                        [
                            Spacer(1, 2 * mm),
                            Paragraph(f"Per-feature contributions: {m.get('model')} v{m.get('version')}", p),
                            _chart(contributions_png(m)),
                        ]
                    )
                )
        story.append(Paragraph(_provenance(c.model_scores), p))
    else:
        story.append(not_available("Model scores, contributions and model versions"))
    story.append(Paragraph("Rules fired", styles["h"]))
    if c.rules_fired:
        rows = [["Rule", "Title", "Version", "Citation"]]
        rows += [
            [str(r.get("rule")), str(r.get("title", "\u2013")), str(r.get("version", "\u2013")), str(r.get("citation"))]
            for r in c.rules_fired
        ]
        story.append(table(rows, [34, 56, 16, 74]))
    else:
        story.append(not_available("Rules fired with citations"))
    return story


def _provenance(models: Sequence[Mapping[str, Any]]) -> str:
    if any(m.get("contributions") for m in models):
        return (
            "Contributions: each feature's push on the log-odds relative to the training cohort's average patient; "
            "scores re-computed at plan build with the model version recorded when the recommendation was accepted."
        )
    return "Only the model versions were stored with the accepted recommendation; no contributions to chart."
