"""Roles, permissions, passwords and sessions (auto-lock, break-glass)."""
