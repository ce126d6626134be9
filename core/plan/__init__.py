"""Treatment plans: radiobiology (BED/EQD2), DVHs with planning-system accuracy, organ-at-risk constraint sets and
their evaluation, the plan model and its review/approval workflow in the store, the PDF document and the DICOM
export. Decision support only: every plan requires clinician confirmation. See docs/plan.md."""

__all__: list[str] = []
