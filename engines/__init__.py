"""Inference backends and the background worker (never imports Qt; enforced by import-linter)."""
