"""Scratch PostgreSQL databases for tests, copied from the migrated template database."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import psycopg
from psycopg import sql


def with_database(url: str, name: str) -> str:
    return psycopg.conninfo.make_conninfo(url, dbname=name)


def drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@contextlib.contextmanager
def own_database(pg_admin_url: str, template_db: str, prefix: str = "t") -> Iterator[str]:
    """A database of the caller's own, copied from `template_db`, dropped afterwards (its URL)."""
    name = f"slawatch_{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template_db)
            )
        )
    try:
        yield with_database(pg_admin_url, name)
    finally:
        drop_database(pg_admin_url, name)
