"""Loading and validating a site's rule base: fact vocabulary, rules, OAR constraint sets, vignettes (TOML files).

A site is a folder under ``resources/rules/`` (``nsclc`` ships): ``facts.toml`` (the vocabulary), any number of
rule files with ``[[rule]]`` tables and optional ``[define]`` named conditions, ``constraints.toml`` with
``[constraint_set.ID]`` tables and ``vignettes.toml`` with ``[[vignette]]`` tables. Adding a site is adding a folder.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import RadPlanError
from core.resources import resource_path
from core.rules.logic import OPERATORS, condition_facts

__all__ = [
    "RULES_ROOT",
    "Constraint",
    "ConstraintSet",
    "FactSpec",
    "RuleBase",
    "RuleBaseError",
    "RuleSpec",
    "load_rulebase",
]

RULES_ROOT = resource_path("rules")
_THEN_KEYS = {"intent", "modality", "total_dose_gy", "fractions", "concurrent_chemo", "constraint_set", "note"}


class RuleBaseError(RadPlanError):
    """A rule file is malformed or inconsistent (unknown fact, operator, reference or constraint set)."""


@dataclass(frozen=True)
class FactSpec:
    name: str
    kind: str  # int | float | bool | enum
    unit: str = ""
    values: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    question: str = ""
    ask: bool = True


@dataclass(frozen=True)
class RuleSpec:
    """One rule: a recommendation (``then`` set, ``group`` for conflicts) or a caution flag (``message``)."""

    id: str
    title: str
    version: str
    source: str
    salience: int
    when: Mapping[str, Any]
    file: str
    group: str = ""
    then: Mapping[str, Any] = field(default_factory=dict)
    severity: str = ""
    message: str = ""

    @property
    def kind(self) -> str:
        return "recommendation" if self.then else "flag"


@dataclass(frozen=True)
class Constraint:
    organ: str
    metric: str
    limit: float
    unit: str


@dataclass(frozen=True)
class ConstraintSet:
    id: str
    title: str
    source: str
    constraints: tuple[Constraint, ...]


@dataclass(frozen=True)
class RuleBase:
    site: str
    facts: Mapping[str, FactSpec]
    rules: tuple[RuleSpec, ...]
    constraint_sets: Mapping[str, ConstraintSet]
    vignettes: tuple[Mapping[str, Any], ...]

    def rule(self, rule_id: str) -> RuleSpec:
        for r in self.rules:
            if r.id == rule_id:
                return r
        raise KeyError(rule_id)


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise RuleBaseError(f"{path.name}: cannot read rule file: {exc}") from exc


def _resolve(cond: Any, defines: Mapping[str, Any], where: str, facts: Mapping[str, FactSpec]) -> dict[str, Any]:
    """Inline ``ref`` entries and check facts and operators; returns a plain nested dict."""
    if not isinstance(cond, Mapping):
        raise RuleBaseError(f"{where}: a condition must be a table, got {cond!r}")
    if "ref" in cond:
        if cond["ref"] not in defines:
            raise RuleBaseError(f"{where}: unknown definition {cond['ref']!r}")
        return _resolve(defines[cond["ref"]], defines, where, facts)
    for key in ("all", "any"):
        if key in cond:
            return {key: [_resolve(c, defines, where, facts) for c in cond[key]]}
    name = cond.get("fact")
    if name not in facts:
        raise RuleBaseError(f"{where}: unknown fact {name!r} (not in facts.toml)")
    ops = [k for k in OPERATORS if k in cond]
    if len(ops) != 1 or len(cond) != 2:
        raise RuleBaseError(f"{where}: a fact test needs exactly one of {', '.join(OPERATORS)}: {dict(cond)}")
    return {"fact": name, ops[0]: cond[ops[0]]}


def _fact_specs(data: Mapping[str, Any]) -> dict[str, FactSpec]:
    out = {}
    for name, spec in data.get("fact", {}).items():
        out[name] = FactSpec(
            name=name,
            kind=spec["kind"],
            unit=spec.get("unit", ""),
            values=tuple(spec.get("values", ())),
            minimum=spec.get("min"),
            maximum=spec.get("max"),
            question=spec.get("question", ""),
            ask=spec.get("ask", True),
        )
    return out


def _rules(path: Path, data: Mapping[str, Any], facts: Mapping[str, FactSpec]) -> list[RuleSpec]:
    defines = data.get("define", {})
    out = []
    for raw in data.get("rule", []):
        where = f"{path.name}: rule {raw.get('id', '?')}"
        missing = [k for k in ("id", "title", "version", "source", "salience", "when") if k not in raw]
        if missing:
            raise RuleBaseError(f"{where}: missing {', '.join(missing)}")
        then = dict(raw.get("then", {}))
        if set(then) - _THEN_KEYS:
            raise RuleBaseError(f"{where}: unknown recommendation keys {sorted(set(then) - _THEN_KEYS)}")
        if not then and not raw.get("message"):
            raise RuleBaseError(f"{where}: a rule needs a 'then' recommendation or a flag 'message'")
        if then and not raw.get("group"):
            raise RuleBaseError(f"{where}: a recommendation rule needs a conflict 'group'")
        out.append(
            RuleSpec(
                id=raw["id"],
                title=raw["title"],
                version=str(raw["version"]),
                source=raw["source"],
                salience=int(raw["salience"]),
                when=_resolve(raw["when"], defines, where, facts),
                file=path.name,
                group=raw.get("group", ""),
                then=then,
                severity=raw.get("severity", ""),
                message=raw.get("message", ""),
            )
        )
    return out


def load_rulebase(site: str = "nsclc", root: Path | None = None) -> RuleBase:
    """Read and validate every TOML file of a site; raises RuleBaseError naming the file and rule at fault."""
    folder = (root or RULES_ROOT) / site
    if not (folder / "facts.toml").is_file():
        raise RuleBaseError(f"no rule base for site {site!r} (expected {folder / 'facts.toml'})")
    facts = _fact_specs(_read(folder / "facts.toml"))
    rules: list[RuleSpec] = []
    sets: dict[str, ConstraintSet] = {}
    vignettes: list[Mapping[str, Any]] = []
    for path in sorted(folder.glob("*.toml")):
        if path.name == "facts.toml":
            continue
        data = _read(path)
        rules += _rules(path, data, facts)
        for set_id, raw in data.get("constraint_set", {}).items():
            cons = tuple(Constraint(c["organ"], c["metric"], float(c["limit"]), c["unit"]) for c in raw["constraints"])
            sets[set_id] = ConstraintSet(set_id, raw["title"], raw["source"], cons)
        vignettes += data.get("vignette", [])
    ids = [r.id for r in rules]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise RuleBaseError(f"duplicate rule ids: {', '.join(duplicates)}")
    for r in rules:
        cs = r.then.get("constraint_set")
        if cs is not None and cs not in sets:
            raise RuleBaseError(f"{r.file}: rule {r.id}: unknown constraint set {cs!r}")
        for name in condition_facts(r.when):
            if name not in facts:  # pragma: no cover - _resolve already checks
                raise RuleBaseError(f"{r.file}: rule {r.id}: unknown fact {name!r}")
    return RuleBase(site, facts, tuple(rules), sets, tuple(vignettes))
