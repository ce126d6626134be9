"""The NSCLC rule base: files, three-valued logic, conflicts by salience, questions, vignettes."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.rules.decide import decide
from core.rules.facts import FactsError, derive_facts, validate_facts
from core.rules.logic import Truth, evaluate, missing_facts
from core.rules.rulebase import RULES_ROOT, RuleBaseError, load_rulebase
from core.rules.staging import stage_group
from core.rules.vignettes import check_vignette, run_vignettes

RB = load_rulebase("nsclc")


def test_every_rule_has_id_title_version_and_a_citation() -> None:
    assert len(RB.rules) >= 15
    for rule in RB.rules:
        assert rule.id.startswith("NSCLC-") and rule.title and rule.version
        assert len(rule.source) > 20 and any(ch.isdigit() for ch in rule.source)  # a year / volume / pages
    kinds = {r.kind for r in RB.rules}
    assert kinds == {"recommendation", "flag"}


def test_constraint_sets_cover_each_fractionation_with_sources() -> None:
    assert set(RB.constraint_sets) == {"sbrt_3fx", "sbrt_5fx", "sbrt_8fx", "conventional_2gy", "palliative"}
    for cs in RB.constraint_sets.values():
        assert cs.source and cs.constraints
        assert all(c.unit in ("Gy", "%") and c.limit > 0 for c in cs.constraints)
    cord = {cs: next(c.limit for c in RB.constraint_sets[cs].constraints if c.organ == "SpinalCord")
            for cs in ("sbrt_3fx", "sbrt_5fx", "conventional_2gy")}  # fmt: skip
    assert cord == {"sbrt_3fx": 21.9, "sbrt_5fx": 30.0, "conventional_2gy": 50.0}  # TG-101 Table III, QUANTEC


@pytest.mark.parametrize("vignette", RB.vignettes, ids=[v["id"] for v in RB.vignettes])
def test_clinical_vignette(vignette: dict[str, object]) -> None:
    result = check_vignette(RB, vignette)
    assert result.passed, result.failures


def test_there_are_at_least_25_vignettes_and_all_pass() -> None:
    results = run_vignettes(RB)
    assert len(results) >= 25 and all(r.passed for r in results)


def test_a_wrong_expectation_fails() -> None:
    vignette = dict(RB.vignettes[0])
    vignette["expect"] = {"total_dose_gy": 60.0, "flags": ["NSCLC-F01"], "questions": ["ecog"]}
    result = check_vignette(RB, vignette)
    assert not result.passed and len(result.failures) == 3


def test_conflict_is_resolved_by_salience_and_reported() -> None:
    facts = validate_facts({"t_stage": "T4", "n_stage": "N3", "m_stage": "M0", "ecog": 3}, RB.facts)
    decision = decide(RB, facts)
    assert [r["rule_ids"] for r in decision.recommendations] == [["NSCLC-R08"]]
    assert decision.conflicts == [
        {"resolution": "salience", "group": "primary", "winner": "NSCLC-R08", "loser": "NSCLC-R05",
         "reason": "NSCLC-R08 (salience 30) overrides NSCLC-R05 (salience 10) in group 'primary'"}
    ]  # fmt: skip
    fired = {r["id"]: r for r in decision.rules_fired}
    assert fired["NSCLC-R05"]["overridden_by"] == "NSCLC-R08" and "overridden_by" not in fired["NSCLC-R08"]


def test_equal_salience_is_reported_as_unresolved(tmp_path: Path) -> None:
    site = tmp_path / "tie"
    site.mkdir()
    (site / "facts.toml").write_text((RULES_ROOT / "nsclc" / "facts.toml").read_text())
    rule = """
[[rule]]
id = "{id}"
title = "t"
version = "1"
source = "s 2020"
salience = 7
group = "primary"
when = {{ fact = "ecog", le = 2 }}
then = {{ intent = "curative", modality = "SBRT", total_dose_gy = {dose}, fractions = 5 }}
"""
    (site / "rules.toml").write_text(rule.format(id="A", dose=50.0) + rule.format(id="B", dose=55.0))
    decision = decide(load_rulebase("tie", tmp_path), {"ecog": 1})
    assert len(decision.recommendations) == 2
    assert decision.conflicts[0]["resolution"] == "unresolved" and decision.conflicts[0]["rules"] == ["A", "B"]


def test_missing_facts_become_questions_with_the_rules_that_need_them() -> None:
    decision = decide(RB, {"t_stage": "T1b", "n_stage": "N0", "m_stage": "M0", "tumor_diameter_cm": 1.5})
    assert decision.recommendations == []
    asked = {q["fact"]: q for q in decision.questions}
    assert "NSCLC-R01" in asked["operable"]["needed_by"] and "NSCLC-R02" in asked["operable"]["needed_by"]
    assert asked["location"]["question"].startswith("Is the tumour peripheral")
    assert "score_rp_grade2" not in asked and "egfr" not in asked  # never asked: computed or optional


def test_three_valued_logic() -> None:
    cond = {"all": [{"fact": "a", "eq": 1}, {"any": [{"fact": "b", "ge": 2}, {"fact": "c", "in": ["x"]}]}]}
    assert evaluate(cond, {"a": 1, "b": 3}) is Truth.TRUE
    assert evaluate(cond, {"a": 2}) is Truth.FALSE
    assert evaluate(cond, {"a": 1, "b": 1}) is Truth.UNKNOWN
    assert missing_facts(cond, {"a": 1, "b": 1}) == ["c"]
    assert evaluate({"fact": "b", "ge": 2}, {"b": True}) is Truth.FALSE  # booleans are not numbers


@pytest.mark.parametrize(
    ("t", "n", "m", "group"),
    [("T1a", "N0", "M0", "IA1"), ("T1c", "N0", "M0", "IA3"), ("T2b", "N0", "M0", "IIA"), ("T3", "N0", "M0", "IIB"),
     ("T2a", "N1", "M0", "IIB"), ("T1b", "N2", "M0", "IIIA"), ("T3", "N2", "M0", "IIIB"), ("T4", "N3", "M0", "IIIC"),
     ("T1a", "N0", "M1b", "IVA"), ("T2a", "N2", "M1c", "IVB"), ("T1", "N0", "M0", None), ("T2a", "NX", "M0", None)],
)  # fmt: skip
def test_ajcc8_stage_groups(t: str, n: str, m: str, group: str | None) -> None:
    assert stage_group(t, n, m) == group


def test_derived_stage_group_and_given_one_is_kept() -> None:
    assert derive_facts({"t_stage": "T2a", "n_stage": "N2", "m_stage": "M0"})["stage_group"] == "IIIA"
    assert derive_facts({"stage_group": "IB"})["stage_group"] == "IB"


def test_invalid_facts_are_all_reported() -> None:
    with pytest.raises(FactsError) as err:
        validate_facts(
            {"ecog": 7, "location": "left", "operable": "yes", "age": 70.5, "note": "x", "score_rp_grade2": 0.1},
            RB.facts,
        )
    text = str(err.value)
    for part in (
        "ecog: must be between 0 and 4",
        "location: must be one of",
        "operable: must be true or false",
        "age: must be a whole number",
        "note: unknown fact",
        "score_rp_grade2: model scores are computed",
    ):
        assert part in text


def test_facts_are_normalised_and_features_kept() -> None:
    facts = validate_facts({"histology": "Adenocarcinoma", "ecog": 1.0, "QCFX": 0.7, "ild": None}, RB.facts)
    assert facts == {"histology": "adenocarcinoma", "ecog": 1, "QCFX": 0.7}


_R = '[[rule]]\nid="X"\ntitle="t"\nversion="1"\n{src}\nsalience=1\nwhen={when}\nmessage="m"\n'


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (_R.format(src="", when='{fact="ecog", eq=1}'), "missing source"),
        (_R.format(src='source="s"', when='{fact="nope", eq=1}'), "unknown fact 'nope'"),
        (_R.format(src='source="s"', when='{fact="ecog", approx=1}'), "needs exactly one of"),
        ('[[rule]]\nid="X"\ntitle="t"\nversion="1"\nsource="s"\nsalience=1\ngroup="g"\nwhen={fact="ecog", eq=1}\n'
         'then={intent="c", modality="SBRT", constraint_set="none"}\n', "unknown constraint set 'none'"),
        (_R.format(src='source="s"', when='{ref="undefined"}'), "unknown definition"),
        ("[[rule]\n", "cannot read rule file"),
    ],
)  # fmt: skip
def test_malformed_rule_files_are_refused_with_file_and_rule(tmp_path: Path, content: str, message: str) -> None:
    site = tmp_path / "bad"
    site.mkdir()
    (site / "facts.toml").write_text((RULES_ROOT / "nsclc" / "facts.toml").read_text())
    (site / "rules.toml").write_text(content)
    with pytest.raises(RuleBaseError, match=message) as err:
        load_rulebase("bad", tmp_path)
    assert "rules.toml" in str(err.value)


def test_unknown_site_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RuleBaseError, match="no rule base for site 'liver'"):
        load_rulebase("liver", tmp_path)
