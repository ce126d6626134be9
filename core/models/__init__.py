"""Risk models (scikit-learn): synthetic cohorts, reproducible training, registry with sha256, explanations."""

__all__: list[str] = []
