"""The plan as a paginated PDF (reportlab) for a clinician to sign.

Contents: header on every page (patient, study, plan id, version, status), the decision-support statement,
identifiers, recommendation and prescription with BED/EQD2, key images with contours, structure volumes, radiomics
highlights, model scores with per-feature contribution charts, rules fired with citations (core/plan/report_charts.py;
each says "not available" when the plan holds no such results), DVH plot and table,
constraints with pass/warning/fail colours, the signatures block, and "Page n of N" on every page.
"""

from __future__ import annotations

import io
from html import escape
from pathlib import Path
from typing import Any

import matplotlib
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import Image, KeepTogether, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from core.plan.figures import dvh_png, plan_key_images
from core.plan.model import DECISION_SUPPORT_STATEMENT
from core.plan.report_charts import decision_support_story
from core.plan.repository import PlanRecord, get_plan
from core.security.session import Access
from core.store.audit import AuditObject
from core.store.store import Store
from core.store.users import record_access

__all__ = ["STATUS_COLOURS", "render_plan_pdf", "write_plan_pdf"]

STATUS_COLOURS = {
    "pass": colors.HexColor("#c8e6c9"),
    "warning": colors.HexColor("#ffe0b2"),
    "fail": colors.HexColor("#ffcdd2"),
    "not_evaluated": colors.HexColor("#e0e0e0"),
}
_FONT_DIR = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
_FONT, _BOLD = "RadPlanSans", "RadPlanSans-Bold"
_DASH = "\u2013"


def _fonts() -> None:
    if _FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(TTFont(_FONT, str(_FONT_DIR / "DejaVuSans.ttf")))
        pdfmetrics.registerFont(TTFont(_BOLD, str(_FONT_DIR / "DejaVuSans-Bold.ttf")))


def _styles() -> dict[str, ParagraphStyle]:
    base = getSampleStyleSheet()
    return {
        "title": ParagraphStyle("t", parent=base["Title"], fontName=_BOLD, fontSize=16, spaceAfter=4),
        "h": ParagraphStyle("h", parent=base["Heading2"], fontName=_BOLD, fontSize=11.5, spaceBefore=8, spaceAfter=3),
        "p": ParagraphStyle("p", parent=base["BodyText"], fontName=_FONT, fontSize=8.5, leading=11),
        "warn": ParagraphStyle(
            "w",
            parent=base["BodyText"],
            fontName=_BOLD,
            fontSize=9,
            leading=12,
            textColor=colors.HexColor("#8a1c1c"),
            borderColor=colors.HexColor("#8a1c1c"),
            borderWidth=0.8,
            borderPadding=4,
            spaceBefore=4,
            spaceAfter=6,
        ),
        "cell": ParagraphStyle("c", parent=base["BodyText"], fontName=_FONT, fontSize=7.5, leading=9),
    }


_CELL = ParagraphStyle("cell", fontName=_FONT, fontSize=7.5, leading=9)
_HEAD = ParagraphStyle("head", fontName=_BOLD, fontSize=7.5, leading=9)


def _table(rows: list[list[Any]], widths: list[float], extra: list[tuple[Any, ...]] | None = None) -> Table:
    """A table whose text cells wrap (every string becomes a Paragraph; '&' and '<' are escaped)."""
    wrapped = [
        [Paragraph(escape(v), _HEAD if n == 0 else _CELL) if isinstance(v, str) else v for v in row]
        for n, row in enumerate(rows)
    ]
    table = Table(wrapped, colWidths=[w * mm for w in widths], repeatRows=1)
    table.setStyle(
        TableStyle(
            [
                ("FONTNAME", (0, 0), (-1, -1), _FONT),
                ("FONTNAME", (0, 0), (-1, 0), _BOLD),
                ("FONTSIZE", (0, 0), (-1, -1), 7.5),
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#dfe7ef")),
                ("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
                ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
                *(extra or []),
            ]
        )
    )
    return table


def _fmt(value: float | None, digits: int = 2) -> str:
    return "\u2013" if value is None else f"{value:.{digits}f}"


class _NumberedCanvas(Canvas):  # type: ignore[misc]
    """Defers pages so that each can say 'Page n of N'."""

    header = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pages: list[dict[str, Any]] = []

    def showPage(self) -> None:  # noqa: N802 (reportlab's name)
        self._pages.append(dict(self.__dict__))
        self._startPage()

    def save(self) -> None:
        total = len(self._pages)
        for state in self._pages:
            self.__dict__.update(state)
            width, height = A4
            self.setFont(_FONT, 7.5)
            line1, _, line2 = self.header.partition("\n")
            self.drawString(15 * mm, height - 8 * mm, line1)
            self.drawString(15 * mm, height - 11 * mm, line2)
            self.line(15 * mm, height - 12.5 * mm, width - 15 * mm, height - 12.5 * mm)
            self.drawString(15 * mm, 8 * mm, "Decision support \u2014 requires clinician confirmation.")
            self.drawRightString(width - 15 * mm, 8 * mm, f"Page {self._pageNumber} of {total}")
            super().showPage()
        super().save()


def _not_available(what: str, styles: dict[str, ParagraphStyle]) -> Paragraph:
    return Paragraph(
        f"{what}: not available (no such results stored for this study when the plan was made).", styles["p"]
    )


def render_plan_pdf(record: PlanRecord, key_images: bytes | None) -> bytes:
    """The PDF bytes of a plan version (``key_images``: PNG, or None when the CT is not in the store)."""
    _fonts()
    s = _styles()
    c = record.content
    rx = c.prescription
    story: list[Any] = [
        Paragraph("Treatment plan summary", s["title"]),
        Paragraph(DECISION_SUPPORT_STATEMENT, s["warn"]),
        Paragraph("Identifiers", s["h"]),
        _table(
            [
                ["Item", "Value"],
                ["Patient", f"{c.patient_name.replace('^', ' ')}  (ID {c.patient_id})"],
                ["Study", f"{c.study_uid}  (date {c.study_date}, accession {c.accession or _DASH})"],
                ["Plan", f"plan {record.plan_id}, version {record.version}, status {record.status.upper()}"],
                ["Created", f"{record.created} by {record.created_by}"],
                ["Content SHA-256", record.payload_sha256],
            ],
            [35, 145],
        ),
        Paragraph("Recommendation and prescription", s["h"]),
        Paragraph(
            "Recommendation: "
            + (
                str(c.recommendation.get("summary", ""))
                if c.recommendation
                else "not available \u2014 prescription entered by hand."
            ),
            s["p"],
        ),
        Spacer(1, 2 * mm),
        _table(
            [
                ["Total dose", "Fractions", "Dose/fraction", "Technique", "Intent", "Target", "Source"],
                [
                    f"{rx.total_dose_gy:g} Gy",
                    str(rx.fractions),
                    f"{rx.dose_per_fraction_gy:.2f} Gy",
                    rx.technique,
                    rx.intent,
                    rx.target,
                    rx.source,
                ],
            ],
            [22, 20, 28, 28, 22, 22, 38],  # header words fit on one line at 7.5 pt bold
        ),
        Spacer(1, 2 * mm),
    ]
    bio = [["Tissue", "\u03b1/\u03b2 (Gy)", "BED (Gy)", "EQD2 (Gy)"]]
    for label, ab in (
        ("Tumour", c.alpha_beta["tumour_gy"]),
        ("Late-responding normal tissue", c.alpha_beta["normal_gy"]),
        *((f"{k} (override)", v) for k, v in c.alpha_beta.get("overrides", {}).items()),
    ):
        b = rx.biological(float(ab))
        bio.append([label, f"{ab:g}", f"{b['bed_gy']:.1f}", f"{b['eqd2_gy']:.1f}"])
    story += [
        _table(bio, [70, 30, 40, 40]),
        Paragraph(
            "Linear-quadratic model: BED = D(1 + d/(\u03b1/\u03b2)), EQD2 = BED/(1 + 2/(\u03b1/\u03b2)); "
            "no repopulation term.",
            s["p"],
        ),
    ]
    story.append(Paragraph("Key images", s["h"]))
    if key_images is not None:
        story.append(Image(io.BytesIO(key_images), width=180 * mm, height=180 * mm * 4.0 / 10.5, kind="proportional"))
    else:
        story.append(_not_available("Key images (CT not in the store)", s))
    rows = [["Structure", "Role", "Type", "Volume (cc)", "\u03b1/\u03b2 (Gy)", "Derived from / margins x,y,z (mm)"]]
    for e in c.structures:
        margin = f"{e.derived_from} + {', '.join(f'{m:g}' for m in e.margins_mm)}" if e.margins_mm else ""
        rows.append([e.name, e.role, e.interpreted_type, f"{e.volume_cc:.2f}", f"{e.alpha_beta_gy:g}", margin])
    story += [
        Paragraph("Structure volumes", s["h"]),
        _table(rows, [32, 18, 22, 24, 20, 64]) if c.structures else Paragraph("No structures.", s["p"]),
    ]
    story += decision_support_story(c, s, _table, lambda what: _not_available(what, s))
    story.append(Paragraph("Dose-volume histograms", s["h"]))
    if c.dose_computed and c.dvh_curves:
        story.append(
            Image(
                io.BytesIO(dvh_png(c.dvh_curves, _roi_colours(c.dvh_curves))),
                width=160 * mm,
                height=160 * mm * 4.2 / 7.5,
                kind="proportional",
            )
        )
        rows = [["ROI", "Vol (cc)", "Dmin", "Dmean", "Dmax", "D99", "D95", "D5", "D1", "D0.03cc"]]
        for d in c.dvh:
            rows.append(
                [
                    d["roi"],
                    f"{d['volume_cc']:.2f}",
                    *(
                        f"{d[k]:.2f}"
                        for k in ("min_gy", "mean_gy", "max_gy", "d99_gy", "d95_gy", "d5_gy", "d1_gy", "d0_03cc_gy")
                    ),
                ]
            )
        story += [
            _table(rows, [30, 18, 16, 16, 16, 16, 16, 16, 16, 20]),
            Paragraph(
                "Doses in Gy. Sub-voxel structure sampling, trilinear dose interpolation, half-slice end "
                "caps (docs/plan.md).",
                s["p"],
            ),
        ]
    else:
        story.append(
            Paragraph("Dose not computed: this is a prescription-only plan (no RT Dose in the study).", s["p"])
        )
    story.append(Paragraph(f"Dose constraints \u2014 {c.constraint_set_name}", s["h"]))
    rows = [["Structure", "Metric", "Value", "Limit", "Status", "Source"]]
    extra = []
    for n, r in enumerate(c.constraint_results, start=1):
        status = {"not_evaluated": "NOT EVALUATED"}.get(r.status, r.status.upper())
        rows.append(
            [
                Paragraph(r.structure, s["cell"]),
                r.metric,
                f"{_fmt(r.value)} {r.unit}",
                f"{r.comparison} {r.limit:g} {r.unit}" + (f" ({r.warning_limit:g})" if r.warning_limit else ""),
                status + (f": {r.note}" if r.note else ""),
                Paragraph(r.source, s["cell"]),
            ]
        )
        extra.append(("BACKGROUND", (4, n), (4, n), STATUS_COLOURS[r.status]))
    story.append(
        _table(rows, [30, 18, 20, 24, 36, 52], extra)
        if c.constraint_results
        else Paragraph("No constraint set applies to this fractionation.", s["p"])
    )
    story.append(
        Paragraph(
            "Pass: within the limit; warning: beyond the limit but within the acceptable variation "
            "(in brackets); fail: beyond it.",
            s["p"],
        )
    )
    sig_rows = [["Step", "Signer", "Role", "Signed (UTC)", "Meaning", "Signature"]]
    signed = {sg.decision: sg for sg in record.signatures}
    for step in ("reviewed", "approved", "rejected"):
        sg = signed.get(step)
        if sg is None and step == "rejected":
            continue
        sig_rows.append(
            [
                step.capitalize(),
                sg.signer if sg else "not signed",
                sg.role if sg else "",
                sg.signed_at[:19].replace("T", " ") if sg else "",
                Paragraph((sg.meaning + (f" \u2014 {sg.comment}" if sg.comment else "")) if sg else "", s["cell"]),
                sg.signature[:12] if sg else "",
            ]
        )
    story.append(
        KeepTogether(
            [
                Paragraph("Signatures", s["h"]),
                _table(sig_rows, [20, 20, 20, 30, 60, 30]),
                Paragraph(DECISION_SUPPORT_STATEMENT, s["warn"]),
            ]
        )
    )
    buffer = io.BytesIO()
    header = (
        f"RadPlan treatment plan {record.plan_id} v{record.version} {record.status.upper()} \u2014 "
        f"{c.patient_name.replace('^', ' ')} (ID {c.patient_id})\nStudy {c.study_uid} ({c.study_date})"
    )
    canvas_class = type("PlanCanvas", (_NumberedCanvas,), {"header": header})
    doc = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=15 * mm,
        rightMargin=15 * mm,
        topMargin=16 * mm,
        bottomMargin=14 * mm,
        title=f"Treatment plan {record.plan_id} v{record.version}",
        author="RadPlan",
        subject="Decision support - requires clinician confirmation",
    )
    doc.build(story, canvasmaker=canvas_class)
    return buffer.getvalue()


def _roi_colours(curves: dict[str, list[list[float]]]) -> dict[str, tuple[int, int, int]]:
    palette = [
        (228, 26, 28),
        (55, 126, 184),
        (77, 175, 74),
        (152, 78, 163),
        (255, 127, 0),
        (166, 86, 40),
        (247, 129, 191),
        (90, 90, 90),
        (23, 190, 207),
    ]
    return {name: palette[n % len(palette)] for n, name in enumerate(curves)}


def write_plan_pdf(store: Store, access: Access, plan_id: int, out: Path) -> int:
    """Write plan ``plan_id`` as a PDF to ``out`` (audited 'plan.report'); returns the page count."""
    record = get_plan(store, access, plan_id)
    pdf = render_plan_pdf(record, plan_key_images(store, access, record))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    tmp.write_bytes(pdf)
    tmp.replace(out)
    with store.transaction() as conn:
        record_access(
            conn, access, "plan.report", objects=[AuditObject("plan", str(plan_id))], details={"bytes": len(pdf)}
        )
    return pdf.count(b"/Type /Page\n") or pdf.count(b"/Type /Page")
