"""RadPlan core: headless domain logic (no Qt, VTK, pyqtgraph, torch or GPU imports; enforced by import-linter)."""
