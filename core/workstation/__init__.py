"""Headless presenters and models behind the workstation GUI (no Qt here): session lock, mask undo, worklist
filters, friendly error messages, plan-review arithmetic and the analysis computation."""
