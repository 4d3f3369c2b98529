"""pytest plugin: a real, throwaway PostgreSQL server for the tests (registered in tests/conftest.py).

- `pg_cluster` (session): one server per test session, started once (~1 s), stopped and removed at the end. Where
  PostgreSQL is not installed the tests that use it skip, or fail when SEGSTUDIO_REQUIRE_PG=1 (.ci/run sets it: the
  team store must be tested against a real server there).
- `pg_url` (function): the URL of a fresh, empty database of its own, dropped WITH (FORCE) after the test.
- `pg_url_factory` (function): more such databases in one test: `pg_url_factory()` -> URL.
- `pg_cluster_factory` (function): a private server of the test's own, e.g. `pg_cluster_factory(fast=False)` for a
  fault test whose "nothing was lost" needs fsync on; removed after the test.

Tests that use any of these are marked `pg`, so `-m "not pg"` leaves them out.
"""
from __future__ import annotations

import os
import uuid
from typing import NoReturn

import pytest

from tests.pg_cluster import PgCluster, PgUnavailable, load_psycopg

PG_FIXTURES = {"pg_cluster", "pg_url", "pg_url_factory", "pg_cluster_factory"}


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "pg: runs against the throwaway PostgreSQL server (tests/pg_cluster.py)")


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        if PG_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.pg)


def _unavailable(e: PgUnavailable) -> NoReturn:
    if os.environ.get("SEGSTUDIO_REQUIRE_PG") == "1":
        pytest.fail(f"SEGSTUDIO_REQUIRE_PG=1 but {e}", pytrace=False)
    pytest.skip(str(e))


def _new_cluster(fast: bool, **kw) -> PgCluster:
    """A cluster not yet started, or skip/fail (outside the except, so the report is one message, not a chain)."""
    try:
        load_psycopg()
        return PgCluster(fast=fast, **kw)
    except PgUnavailable as e:
        missing = e
    _unavailable(missing)


@pytest.fixture(scope="session")
def pg_cluster():
    cluster = _new_cluster(fast=True)
    try:
        yield cluster.start()
    finally:
        cluster.remove()


@pytest.fixture
def pg_url_factory(pg_cluster):
    made: list[str] = []

    def make() -> str:
        pg_cluster.start()  # a test before may have stopped or killed the shared server; no-op when it runs
        name = f"t_{uuid.uuid4().hex}"
        url = pg_cluster.create_database(name)
        made.append(name)
        return url

    yield make
    pg_cluster.start()
    for name in made:
        pg_cluster.drop_database(name)


@pytest.fixture
def pg_url(pg_url_factory) -> str:
    return pg_url_factory()


@pytest.fixture
def pg_cluster_factory():
    made: list[PgCluster] = []

    def make(fast: bool = True, **kw) -> PgCluster:
        cluster = _new_cluster(fast, **kw)
        made.append(cluster)
        return cluster.start()

    yield make
    for cluster in made:
        cluster.remove()
