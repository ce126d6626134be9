"""`radplan recommend`, `rules list|test`, `risk-model list`, `feedback record|report|export`: decision support.

`recommend`, `rules` and `risk-model` compute from the files given (facts, note) and the shipped rule and model
files; they read no patient data from the store, so they need no sign-in. Site-trained risk models dropped under
``<data dir>/models/risk/`` take precedence over the shipped demonstration models. `feedback` stores clinicians'
accept/override decisions in the encrypted store (signed in, authorised, audited).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from app.bootstrap import AppContext
from app.cli.common import EXIT_ERROR, echo_json, pass_app
from core.security.roles import Permission

__all__ = ["feedback", "recommend_cmd", "risk_model", "rules"]

_SITE = click.option("--site", default="nsclc", show_default=True, help="Rule base (folder under resources/rules).")


def _model_roots(app: AppContext) -> list[Path]:
    from core.models.registry import SHIPPED_MODELS

    return [app.settings.data_dir / "models" / "risk", SHIPPED_MODELS]


def _read_facts(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise click.ClickException(f"{path}: not UTF-8 text ({exc.reason})") from exc
    except json.JSONDecodeError as exc:
        raise click.ClickException(f"{path}: not valid JSON: {exc.msg} at line {exc.lineno}") from exc
    if not isinstance(data, dict):
        raise click.ClickException(f"{path}: FACTS.json must be a JSON object of fact names to values")
    return data


def _print_text(result: dict[str, Any]) -> None:
    click.echo(result["decision_support_notice"])
    if not result["recommendations"]:
        click.echo("No recommendation: see the questions below.")
    for i, rec in enumerate(result["recommendations"], 1):
        dose = f"{rec['total_dose_gy']:g} Gy in {rec['fractions']} fractions" if rec["total_dose_gy"] else "no RT dose"
        chemo = ", concurrent chemotherapy" if rec["concurrent_chemo"] else ""
        click.echo(f"{i}. {rec['intent']} {rec['modality']}: {dose}{chemo} [{', '.join(rec['rule_ids'])}]")
        click.echo(f"   {rec['note']}")
    for c in result["conflicts"]:
        click.echo(f"conflict: {c['reason']}")
    for c in result.get("fact_conflicts", []):
        click.echo(f"note disagrees on {c['fact']}: FACTS.json {c['json']!r}, note {c['note']!r} (FACTS.json used)")
    for f in result["flags"]:
        click.echo(f"flag ({f['severity']}) {f['id']}: {f['message']}")
    for s in result["scores"]:
        click.echo(f"score {s['model']} {s['model_version']}: {s['probability']:.2f} ({s['unit']}); {s['note']}")
        for c in s["contributions"]:
            click.echo(f"   {c['text']}")
    for q in result["questions"]:
        click.echo(f"question: {q['question']} (needed by {', '.join(q['needed_by'])})")
    for r in result["rules_fired"]:
        over = f", overridden by {r['overridden_by']}" if "overridden_by" in r else ""
        click.echo(f"rule {r['id']} v{r['version']}: {r['title']}{over} -- {r['source']}")


@click.command("recommend")
@click.option(
    "--facts",
    "facts_path",
    required=True,
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="FACTS.json: patient facts (keys in docs/decision-support.md).",
)
@click.option(
    "--note",
    "note_path",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="Clinical note (UTF-8 text); its facts fill keys the JSON leaves out.",
)
@click.option(
    "--radiomics",
    "radiomics_path",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="Features CSV from `radplan radiomics` (ibsi_tag,feature,value); the JSON wins on conflict.",
)
@_SITE
@click.option("--json", "as_json", is_flag=True, help="Print the full result as JSON.")
@pass_app
def recommend_cmd(
    app: AppContext, facts_path: Path, note_path: Path | None, radiomics_path: Path | None, site: str, as_json: bool
) -> None:
    """Treatment recommendation (decision support) from patient facts and an optional clinical note."""
    from core.rules.recommend import read_radiomics_csv, recommend  # spaCy, scikit-learn load only here
    from core.rules.rulebase import load_rulebase

    facts = _read_facts(facts_path)
    note = None
    if note_path is not None:
        try:
            note = note_path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise click.ClickException(f"{note_path}: not UTF-8 text ({exc.reason})") from exc
    radiomics = None
    if radiomics_path is not None:
        try:
            radiomics = read_radiomics_csv(radiomics_path.read_text(encoding="utf-8"))
        except UnicodeDecodeError as exc:
            raise click.ClickException(f"{radiomics_path}: not UTF-8 text ({exc.reason})") from exc
    result = recommend(load_rulebase(site), facts, note, model_roots=_model_roots(app), radiomics=radiomics)
    if as_json:
        echo_json(result)
    else:
        _print_text(result)


@click.group()
def rules() -> None:
    """The clinical rule base: list the rules with their sources, run the clinical vignettes."""


@rules.command("list")
@_SITE
@click.option("--json", "as_json", is_flag=True)
def rules_list(site: str, as_json: bool) -> None:
    """Every rule (id, version, kind, salience, title, source) and the OAR constraint sets."""
    from core.rules.rulebase import load_rulebase

    rb = load_rulebase(site)
    if as_json:
        echo_json(
            {
                "site": rb.site,
                "rules": [
                    {"id": r.id, "version": r.version, "kind": r.kind, "salience": r.salience, "group": r.group,
                     "title": r.title, "source": r.source, "file": r.file}
                    for r in rb.rules
                ],
                "constraint_sets": [
                    {"id": c.id, "title": c.title, "source": c.source,
                     "constraints": [k.__dict__ for k in c.constraints]}
                    for c in rb.constraint_sets.values()
                ],
            }
        )  # fmt: skip
        return
    for r in rb.rules:
        group = f" group {r.group}" if r.group else ""
        click.echo(f"{r.id} v{r.version} [{r.kind}, salience {r.salience}{group}] {r.title}")
        click.echo(f"    source: {r.source}")
    for c in rb.constraint_sets.values():
        click.echo(f"constraint set {c.id}: {c.title} ({len(c.constraints)} constraints)")
        click.echo(f"    source: {c.source}")


@rules.command("test")
@_SITE
@click.option("--json", "as_json", is_flag=True)
def rules_test(site: str, as_json: bool) -> None:
    """Run the clinical vignettes; exit status 1 when any fails."""
    from core.rules.rulebase import load_rulebase
    from core.rules.vignettes import run_vignettes

    results = run_vignettes(load_rulebase(site))
    failed = [r for r in results if not r.passed]
    if as_json:
        echo_json({"passed": len(results) - len(failed), "failed": len(failed), "vignettes": results})
    else:
        for r in results:
            click.echo(f"{'PASS' if r.passed else 'FAIL'} {r.id} {r.title}")
            for failure in r.failures:
                click.echo(f"    {failure}")
        click.echo(f"{len(results) - len(failed)}/{len(results)} vignettes passed")
    if failed:
        raise click.exceptions.Exit(EXIT_ERROR)


@click.group("risk-model")
def risk_model() -> None:
    """Risk-model registry (pneumonitis, local control): shipped demonstrations and site-trained drops."""


@risk_model.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def risk_model_list(app: AppContext, as_json: bool) -> None:
    """The model used for each outcome: version, sha256 (verified), folder, validation metrics."""
    from core.models.registry import find_models

    models = find_models(_model_roots(app))
    rows = [
        {"model": m.model_id, "version": m.version, "sha256": m.sha256, "folder": str(m.folder),
         "demonstration": m.demonstration, "features": list(m.features),
         "metrics": {k: {x: y for x, y in v.items() if not isinstance(y, list)}
                     for k, v in m.manifest.get("metrics", {}).items()}}
        for m in models.values()
    ]  # fmt: skip
    if as_json:
        echo_json(rows)
        return
    for row in rows:
        demo = " DEMONSTRATION (synthetic data)" if row["demonstration"] else ""
        click.echo(f"{row['model']} {row['version']} sha256 {row['sha256'][:16]}…{demo} {row['folder']}")


@risk_model.command("show")
@click.argument("model_id")
@click.option("--json", "as_json", is_flag=True, help="The full manifest (metrics, calibration bins) as JSON.")
@pass_app
def risk_model_show(app: AppContext, model_id: str, as_json: bool) -> None:
    """A model's card and its calibration data (out-of-fold and external, 10 quantile bins)."""
    from core.models.registry import find_models

    models = find_models(_model_roots(app))
    if model_id not in models:
        raise click.ClickException(f"no risk model {model_id!r} (known: {', '.join(sorted(models))})")
    model = models[model_id]
    if as_json:
        echo_json({**model.manifest, "folder": str(model.folder)})
        return
    card = model.folder / "MODEL_CARD.md"
    click.echo(card.read_text(encoding="utf-8") if card.is_file() else f"{model_id} {model.version}: no model card")
    for cohort, key in (("development (out-of-fold)", "calibration_oof"), ("external", "calibration")):
        part = "development" if cohort.startswith("development") else "external"
        bins = model.manifest.get("metrics", {}).get(part, {}).get(key, [])
        click.echo(f"calibration, {cohort}: bin  n  mean predicted  observed rate")
        for b in bins:
            click.echo(f"    {b['bin']:2d} {b['n']:5d}  {b['mean_predicted']:.3f}  {b['observed_rate']:.3f}")


@click.group()
def feedback() -> None:
    """Accept/override recommendations; override rates per rule and model; export; similar previous patients."""


@feedback.command("record")
@click.argument("result_path", metavar="RESULT.json", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.argument("decision", type=click.Choice(["accept", "override"]))
@click.option("--reason", default="", help="Why (required for an override, at least 10 characters).")
@click.option(
    "--chosen",
    "chosen_path",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="JSON object: what was prescribed instead (e.g. total_dose_gy, fractions, modality).",
)
@click.option("--patient-id", default="", help="The patient the recommendation was for (audited).")
@pass_app
def feedback_record(
    app: AppContext, result_path: Path, decision: str, reason: str, chosen_path: Path | None, patient_id: str
) -> None:
    """Record the decision on the first recommendation of a `radplan recommend --json` result."""
    from core.rules.feedback import record_feedback

    result = _read_facts(result_path)
    chosen = _read_facts(chosen_path) if chosen_path is not None else None
    access = app.authorize(Permission.EDIT_PLANS)
    row = record_feedback(
        app.store(), access, result, "accept" if decision == "accept" else "override",
        reason=reason, chosen=chosen, patient_id=patient_id,
    )  # fmt: skip
    click.echo(f"feedback {row} recorded ({decision})")


@feedback.command("report")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def feedback_report_cmd(app: AppContext, as_json: bool) -> None:
    """Override rate per rule and per model version."""
    from core.rules.feedback import feedback_report

    rows = feedback_report(app.store(), app.authorize(Permission.READ_PATIENT_DATA))
    if as_json:
        echo_json([{**r.__dict__, "override_rate": r.override_rate} for r in rows])
        return
    if not rows:
        click.echo("no feedback recorded yet")
    for r in rows:
        click.echo(
            f"{r.kind:5} {r.key:28} accepted {r.accepted:4}  overridden {r.overridden:4}  "
            f"override rate {100 * r.override_rate:5.1f} %"
        )


@feedback.command("export")
@click.argument("out", type=click.Path(path_type=Path, dir_okay=False))
@pass_app
def feedback_export(app: AppContext, out: Path) -> None:
    """Write all feedback as JSON Lines (facts, recommendation, decision, reason, chosen) for retraining."""
    from core.rules.feedback import export_feedback

    count = export_feedback(app.store(), app.authorize(Permission.READ_PATIENT_DATA), out)
    click.echo(f"{count} feedback rows written to {out}")


@feedback.command("similar")
@click.option("--facts", "facts_path", required=True, type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("-k", "k", type=click.IntRange(1, 50), default=5, show_default=True, help="How many patients.")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def feedback_similar(app: AppContext, facts_path: Path, k: int, as_json: bool) -> None:
    """The most similar previous patients (k-means on radiomics signatures) with their plans."""
    from core.rules.similar import similar_patients

    facts = _read_facts(facts_path)
    names, found = similar_patients(app.store(), app.authorize(Permission.READ_PATIENT_DATA), facts, k=k)
    if as_json:
        echo_json({"features": names, "patients": found})
        return
    click.echo(f"features (z-scores on the stored cohort): {', '.join(names)}")
    for p in found:
        plan = p.plan
        dose = f"{plan.get('total_dose_gy')} Gy / {plan.get('fractions')} fx" if plan.get("total_dose_gy") else "-"
        same = "same cluster" if p.same_cluster else f"cluster {p.cluster}"
        click.echo(f"{p.patient_id:12} distance {p.distance:6.2f}  {same:12} {p.decision:8} {dose}")
