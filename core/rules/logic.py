"""Three-valued (Kleene) evaluation of rule conditions: a condition on a missing fact is unknown, never guessed.

Condition grammar (as read from the TOML rule files): ``{"fact": NAME, OP: VALUE}`` with OP one of ``in``, ``eq``,
``ge``, ``gt``, ``le``, ``lt``; ``{"all": [...]}``; ``{"any": [...]}``; ``{"ref": NAME}`` for a named definition.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any

__all__ = ["OPERATORS", "Truth", "condition_facts", "evaluate", "missing_facts"]

OPERATORS = ("in", "eq", "ge", "gt", "le", "lt")


class Truth(Enum):
    TRUE = "true"
    FALSE = "false"
    UNKNOWN = "unknown"


def _compare(op: str, value: Any, target: Any) -> bool:
    if op == "in":
        return bool(value in target)
    if op == "eq":
        return bool(value == target)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if op == "ge":
        return bool(value >= target)
    if op == "gt":
        return bool(value > target)
    if op == "le":
        return bool(value <= target)
    return bool(value < target)


def evaluate(condition: Mapping[str, Any], facts: Mapping[str, Any]) -> Truth:
    """TRUE/FALSE when decided by the facts present, UNKNOWN when it depends on a missing fact."""
    if "all" in condition:
        results = [evaluate(c, facts) for c in condition["all"]]
        if Truth.FALSE in results:
            return Truth.FALSE
        return Truth.UNKNOWN if Truth.UNKNOWN in results else Truth.TRUE
    if "any" in condition:
        results = [evaluate(c, facts) for c in condition["any"]]
        if Truth.TRUE in results:
            return Truth.TRUE
        return Truth.UNKNOWN if Truth.UNKNOWN in results else Truth.FALSE
    name = condition["fact"]
    if facts.get(name) is None:
        return Truth.UNKNOWN
    op = next(k for k in OPERATORS if k in condition)
    return Truth.TRUE if _compare(op, facts[name], condition[op]) else Truth.FALSE


def missing_facts(condition: Mapping[str, Any], facts: Mapping[str, Any]) -> list[str]:
    """The missing facts that keep an UNKNOWN condition undecided (empty when it is decided)."""
    if evaluate(condition, facts) is not Truth.UNKNOWN:
        return []
    if "fact" in condition:
        return [str(condition["fact"])]
    out: list[str] = []
    for child in condition.get("all", condition.get("any", [])):
        for name in missing_facts(child, facts):
            if name not in out:
                out.append(name)
    return out


def condition_facts(condition: Mapping[str, Any]) -> list[str]:
    """Every fact name a condition refers to, in order of first use."""
    if "fact" in condition:
        return [str(condition["fact"])]
    out: list[str] = []
    for child in condition.get("all", condition.get("any", [])):
        for name in condition_facts(child):
            if name not in out:
                out.append(name)
    return out
