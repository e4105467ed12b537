"""
PostgreSQL integrity errors turned into the store's own errors, naming the field.

The data-access functions check their input first and say precisely what is wrong; this is
the backstop for what only the database can see (a race for a unique name, a limit two
writers reach together) and for rules that only SQL states.
"""

from __future__ import annotations

import psycopg2
import psycopg2.errors

from wevoip.store.errors import Conflict, Invalid, LimitReached, StoreError

LIMITS = {"customers_max_subscribers": "max_subscribers"}
# Constraints whose name does not say the field a caller would recognise.
FIELDS = {"idempotency_keys_pkey": "idempotency_key"}


def _field(constraint: str, table: str, column: str | None) -> str:
    """PostgreSQL names constraints <table>_<columns>_<kind>; the middle is the field."""
    if column:
        return column
    if table and constraint.startswith(table + "_"):
        middle = constraint[len(table) + 1:].rsplit("_", 1)[0]
        return middle.split("_id_")[-1] if middle else constraint
    return constraint.rsplit("_", 1)[0] or constraint


def error_for_constraint(error: psycopg2.IntegrityError) -> StoreError:
    diag = error.diag
    constraint = diag.constraint_name or ""
    if constraint in LIMITS:
        return LimitReached(LIMITS[constraint], int(diag.message_detail or 0))
    field = FIELDS.get(constraint) or _field(constraint, diag.table_name or "", diag.column_name)
    if isinstance(error, psycopg2.errors.UniqueViolation):
        return Conflict(field, "is already taken")
    if isinstance(error, psycopg2.errors.ForeignKeyViolation):
        return Invalid(field, "refers to something that does not exist or is in use")
    if isinstance(error, psycopg2.errors.NotNullViolation):
        return Invalid(field, "is required")
    if isinstance(error, psycopg2.errors.CheckViolation):
        return Invalid(field, "is not an allowed value")
    return StoreError(str(error).strip())
