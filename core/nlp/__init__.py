"""Clinical NLP (spaCy, rule-based, no downloaded model): note → facts with negation/hypothetical/historical."""

__all__: list[str] = []
