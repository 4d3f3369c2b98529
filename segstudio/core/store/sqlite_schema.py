"""The SQLite store's schema: the tables of a new project and the migrations from each older
version, applied in order by SqliteStore when a project is opened."""

from __future__ import annotations

SCHEMA_VERSION = 3

SCHEMA_V1 = """
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE images(
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    width INTEGER, height INTEGER,
    hash TEXT,
    status TEXT NOT NULL DEFAULT 'new'
        CHECK(status IN ('new','predicted','in_progress','done','skipped')),
    error TEXT,
    missing INTEGER NOT NULL DEFAULT 0,
    uncertainty REAL,
    updated REAL
);
CREATE INDEX images_listing ON images(missing, status, path);
CREATE TABLE classes(
    id INTEGER PRIMARY KEY CHECK(id >= 1),
    name TEXT NOT NULL UNIQUE,
    color TEXT NOT NULL,
    hotkey TEXT NOT NULL DEFAULT '',
    ignore INTEGER NOT NULL DEFAULT 0,
    position INTEGER NOT NULL
);
CREATE TABLE regions(
    id INTEGER PRIMARY KEY,
    image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    class_id INTEGER NOT NULL REFERENCES classes(id),
    x INTEGER NOT NULL, y INTEGER NOT NULL, w INTEGER NOT NULL, h INTEGER NOT NULL,
    rle BLOB NOT NULL,
    area INTEGER NOT NULL,
    z INTEGER NOT NULL DEFAULT 0,
    source TEXT NOT NULL DEFAULT 'manual',
    score REAL,
    iscrowd INTEGER NOT NULL DEFAULT 0,
    extra TEXT
);
CREATE INDEX regions_image ON regions(image_id);
CREATE INDEX regions_class ON regions(class_id);
CREATE TABLE settings(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE models(
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    created REAL NOT NULL,
    metrics TEXT
);
CREATE TABLE counters(name TEXT PRIMARY KEY, next INTEGER NOT NULL);
INSERT INTO counters VALUES ('region', 1);
"""

# Migrations from version N to N+1, applied in order inside one transaction each.
MIGRATIONS: dict[int, str] = {
    # 2: claims on open images (a window holds the image a person works on; a predictor in any
    # process leaves a claimed image alone). One row per image and holder; a claim lapses at
    # `expires` unless its holder renews it, so a crashed window does not lock an image forever.
    1: """
CREATE TABLE claims(
    image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    owner TEXT NOT NULL,
    expires REAL NOT NULL,
    PRIMARY KEY(image_id, owner)
);
CREATE INDEX claims_owner ON claims(owner);
""",
    # 3: sequences. A region's object identity across frames (`track`; NULL: the region's own id, a
    # new object), and what a probe of each stack or video file found (frame count and size), kept with
    # the file's size and mtime so that a scan probes only new or changed files.
    2: """
ALTER TABLE regions ADD COLUMN track INTEGER;
CREATE INDEX regions_track ON regions(track);
CREATE TABLE containers(
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime INTEGER NOT NULL,
    frames INTEGER NOT NULL,
    kind TEXT NOT NULL,
    width INTEGER NOT NULL DEFAULT 0,
    height INTEGER NOT NULL DEFAULT 0,
    error TEXT
);
""",
}


def split_sql(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]
