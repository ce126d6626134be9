"""Clinical rule base (experta): rule files under resources/rules/<site>/, engine, vignettes, recommendation."""

__all__: list[str] = []
