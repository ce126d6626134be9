"""The experta knowledge engine built from a site's rule files.

Facts declared: ``Patient`` (validated patient facts, NLP-filled), ``Scores`` (model scores, ``score_*`` keys).
Each rule file entry becomes two experta rules with the entry's salience: one that fires when its condition is
TRUE (declaring a ``Candidate`` recommendation or a ``Caution`` flag) and one that fires when the condition is
UNKNOWN (declaring a ``Question`` naming the missing facts). A resolution rule (salience -100, so after all
clinical rules) retracts, within one conflict group, every candidate with a lower salience than another and
declares an ``Override`` explaining which rule won; equal saliences are declared as ``Tie``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from experta import AS, MATCH, TEST, Fact, KnowledgeEngine, Rule  # type: ignore[import-untyped]

from core.rules.logic import Truth, evaluate, missing_facts
from core.rules.rulebase import RuleBase, RuleSpec

__all__ = ["EngineResult", "run_engine"]


class Patient(Fact):  # type: ignore[misc]
    """The patient's facts."""


class Scores(Fact):  # type: ignore[misc]
    """Model scores (probabilities)."""


class Candidate(Fact):  # type: ignore[misc]
    """A recommendation proposed by a rule."""


class Caution(Fact):  # type: ignore[misc]
    """A caution flag raised by a rule."""


class Question(Fact):  # type: ignore[misc]
    """Facts a rule needs that are missing."""


class Override(Fact):  # type: ignore[misc]
    """A conflict resolved by salience."""


class Tie(Fact):  # type: ignore[misc]
    """Two rules of one group with equal salience both fired: unresolved, reported."""


@dataclass
class EngineResult:
    """What the engine concluded; lists keep firing order."""

    candidates: list[dict[str, Any]] = field(default_factory=list)
    overridden: list[dict[str, Any]] = field(default_factory=list)
    flags: list[dict[str, Any]] = field(default_factory=list)
    questions: list[dict[str, Any]] = field(default_factory=list)
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    fired: list[str] = field(default_factory=list)


def _view(p: Any, s: Any) -> dict[str, Any]:
    merged = {k: v for k, v in p.as_dict().items() if isinstance(k, str) and not k.startswith("__")}
    merged.update({k: v for k, v in s.as_dict().items() if isinstance(k, str) and not k.startswith("__")})
    return merged


def _compile(spec: RuleSpec) -> dict[str, Any]:
    """The two experta rules (fires / asks) for one rule file entry."""

    def is_true(p: Any, s: Any) -> bool:
        return evaluate(spec.when, _view(p, s)) is Truth.TRUE

    def is_unknown(p: Any, s: Any) -> bool:
        return evaluate(spec.when, _view(p, s)) is Truth.UNKNOWN

    def fire(self: KnowledgeEngine, p: Any, s: Any) -> None:
        self.fired.append(spec.id)
        if spec.kind == "recommendation":
            self.declare(Candidate(rule_id=spec.id, group=spec.group, salience=spec.salience))
        else:
            self.declare(Caution(rule_id=spec.id))

    def ask(self: KnowledgeEngine, p: Any, s: Any) -> None:
        needed = tuple(missing_facts(spec.when, _view(p, s)))
        self.declare(Question(rule_id=spec.id, facts=needed))

    safe = spec.id.replace("-", "_")
    patterns: tuple[Any, ...] = (AS.p << Patient(), AS.s << Scores())
    return {
        f"fire_{safe}": Rule(*patterns, TEST(is_true), salience=spec.salience)(fire),
        f"ask_{safe}": Rule(*patterns, TEST(is_unknown), salience=spec.salience)(ask),
    }


def _resolve(self: KnowledgeEngine, a: Any, b: Any, g: str, sa: int, sb: int) -> None:
    self.retract(b)
    self.declare(Override(group=g, winner=a["rule_id"], loser=b["rule_id"], winner_salience=sa, loser_salience=sb))


def _tie(self: KnowledgeEngine, a: Any, b: Any, g: str, sa: int) -> None:
    if a["rule_id"] < b["rule_id"]:
        self.declare(Tie(group=g, rules=(a["rule_id"], b["rule_id"]), salience=sa))


def _engine_class(rulebase: RuleBase) -> type[KnowledgeEngine]:
    attrs: dict[str, Any] = {}
    for spec in rulebase.rules:
        attrs.update(_compile(spec))
    higher: Callable[[int, int], bool] = lambda sa, sb: sa > sb  # noqa: E731
    attrs["resolve_conflict"] = Rule(
        AS.a << Candidate(group=MATCH.g, salience=MATCH.sa),
        AS.b << Candidate(group=MATCH.g, salience=MATCH.sb),
        TEST(higher),
        salience=-100,
    )(_resolve)
    attrs["report_tie"] = Rule(
        AS.a << Candidate(group=MATCH.g, salience=MATCH.sa),
        AS.b << Candidate(group=MATCH.g, salience=MATCH.sa),
        TEST(lambda a, b: a["rule_id"] != b["rule_id"]),
        salience=-100,
    )(_tie)
    return type(f"{rulebase.site.capitalize()}Engine", (KnowledgeEngine,), attrs)


#: id(rulebase) -> (rulebase, engine class); the rule base is kept referenced so its id cannot be reused.
_CLASSES: dict[int, tuple[RuleBase, type[KnowledgeEngine]]] = {}


def run_engine(rulebase: RuleBase, patient: Mapping[str, Any], scores: Mapping[str, float]) -> EngineResult:
    """Declare the facts, run the engine to quiescence and collect its conclusions."""
    cached = _CLASSES.get(id(rulebase))
    if cached is None or cached[0] is not rulebase:
        cached = _CLASSES[id(rulebase)] = (rulebase, _engine_class(rulebase))
    cls = cached[1]
    engine = cls()
    engine.fired = []
    engine.reset()
    engine.declare(Patient(**dict(patient)))
    engine.declare(Scores(**dict(scores)))
    engine.run()
    result = EngineResult(fired=list(engine.fired))
    for fact in engine.facts.values():
        if isinstance(fact, Candidate):
            result.candidates.append({"rule_id": fact["rule_id"], "salience": fact["salience"]})
        elif isinstance(fact, Caution):
            result.flags.append({"rule_id": fact["rule_id"]})
        elif isinstance(fact, Question):
            result.questions.append({"rule_id": fact["rule_id"], "facts": list(fact["facts"])})
        elif isinstance(fact, Override):
            reason = (
                f"{fact['winner']} (salience {fact['winner_salience']}) overrides {fact['loser']} "
                f"(salience {fact['loser_salience']}) in group {fact['group']!r}"
            )
            keys = ("group", "winner", "loser")
            result.conflicts.append({"resolution": "salience", **{k: fact[k] for k in keys}, "reason": reason})
            result.overridden.append({"rule_id": fact["loser"], "by": fact["winner"]})
        elif isinstance(fact, Tie):
            rules = list(fact["rules"])
            reason = f"{' and '.join(rules)} both fired with salience {fact['salience']}: unresolved, both shown"
            result.conflicts.append(
                {"resolution": "unresolved", "group": fact["group"], "rules": rules, "reason": reason}
            )
    order = {rid: i for i, rid in enumerate(result.fired)}
    result.candidates.sort(key=lambda c: (-c["salience"], order[c["rule_id"]]))
    return result
