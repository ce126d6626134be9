"""Roles and what each may do.

Radiologists read studies, run analyses, create/edit plans and give the clinical approval (signature) of a plan;
physicists read what they review and give the physics review (their sign-off: draft -> reviewed), which every
approval needs first (issue 7's workflow; issue 2 called the physicist's sign-off "approve"); admins manage users,
PACS nodes and settings and read the audit trail but cannot open patient data.
Any user may invoke break-glass for patient data: it is allowed, and flagged in the audit trail with the reason.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["BREAK_GLASS_PERMISSIONS", "ROLE_PERMISSIONS", "Permission", "Role", "role_allows"]


class Role(StrEnum):
    RADIOLOGIST = "radiologist"
    PHYSICIST = "physicist"
    ADMIN = "admin"


class Permission(StrEnum):
    READ_PATIENT_DATA = "read_patient_data"
    IMPORT_STUDIES = "import_studies"
    RUN_ANALYSIS = "run_analysis"
    EDIT_PLANS = "edit_plans"
    REVIEW_PLANS = "review_plans"
    APPROVE_PLANS = "approve_plans"
    MANAGE_USERS = "manage_users"
    MANAGE_PACS = "manage_pacs"
    MANAGE_SETTINGS = "manage_settings"
    VIEW_AUDIT = "view_audit"
    MANAGE_STORE = "manage_store"


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.RADIOLOGIST: frozenset(
        {
            Permission.READ_PATIENT_DATA,
            Permission.IMPORT_STUDIES,
            Permission.RUN_ANALYSIS,
            Permission.EDIT_PLANS,
            Permission.APPROVE_PLANS,
        }
    ),
    Role.PHYSICIST: frozenset(
        {
            Permission.READ_PATIENT_DATA,
            Permission.REVIEW_PLANS,
        }
    ),
    Role.ADMIN: frozenset(
        {
            Permission.MANAGE_USERS,
            Permission.MANAGE_PACS,
            Permission.MANAGE_SETTINGS,
            Permission.VIEW_AUDIT,
            Permission.MANAGE_STORE,
        }
    ),
}

#: Permissions that break-glass may grant for one action (never user management or plan approval).
BREAK_GLASS_PERMISSIONS = frozenset({Permission.READ_PATIENT_DATA})


def role_allows(role: Role, permission: Permission) -> bool:
    return permission in ROLE_PERMISSIONS[role]
