"""What a PostgreSQL project has beyond the shared schema: the triggers that tell listening clients
what changed (NOTIFY), that stamp history with the server's user, and that keep review to reviewers;
the group roles of a team and their privileges (`setup_roles`); and the id sequences after a copy.

Role names are fixed constants (never a user's input); a person's login role is named by the lead
and composed with psycopg's sql.Identifier, never by string formatting.
"""

from __future__ import annotations

import logging

from psycopg import errors as pg_errors
from psycopg import sql

from segstudio.core.store.api import StoreError

log = logging.getLogger(__name__)

EXTRAS_VERSION = "4"
CHANNEL = "segstudio"
KINDS = ("annotator", "reviewer", "lead")  # a project's group roles, weakest first
ROLE_KEY = "role_"  # meta key prefix of the group role of each kind in this database
WRITE_LOCK = 0x5E65_7701  # pg_advisory_xact_lock key of a project's writes (one database, one project)
CLAIM_MAX_S = 3600  # the longest a claim may run before its renewal, whatever a client asks

# Every function pins its search_path and names the project's tables in full (public.*): an annotator's
# temporary table or view named `claims` or `pg_roles` cannot stand in for the real one. The owner
# (whoever created the tables: the lead's setup, or a copy into the database) is trusted as written;
# anyone else's history rows carry the server's session user and clock, whatever the client sent.
_EXTRAS = """
CREATE OR REPLACE FUNCTION public.segstudio_is_owner() RETURNS boolean LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp AS $$
  SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = session_user AND rolsuper)
      OR session_user = (SELECT tableowner FROM pg_catalog.pg_tables WHERE schemaname = 'public'
                         AND tablename = 'images')
$$;

-- a member of this project's group of that kind: annotator, reviewer or lead (everyone while the
-- team's roles are not set up: one trusted user). The groups are this database's own, named in meta.
CREATE OR REPLACE FUNCTION public.segstudio_member(kind text) RETURNS boolean LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE grp text;
BEGIN
  IF public.segstudio_is_owner() THEN RETURN true; END IF;
  SELECT value INTO grp FROM public.meta WHERE key = 'role_' || kind;
  IF grp IS NULL THEN RETURN true; END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = grp) THEN RETURN false; END IF;
  RETURN pg_catalog.pg_has_role(session_user, grp, 'MEMBER');
END $$;

-- the login part of a claim's owner, `user@host:pid:random` (a login may hold '@' itself)
CREATE OR REPLACE FUNCTION public.segstudio_claim_user(owner text) RETURNS text LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp AS $$
  SELECT substring(owner from '^(.*)@[^@]*$')
$$;

-- does this session hold an image: a lead always; anyone else by a live claim of theirs
CREATE OR REPLACE FUNCTION public.segstudio_holds(img bigint) RETURNS boolean LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF public.segstudio_member('lead') THEN RETURN true; END IF;
  RETURN EXISTS (SELECT 1 FROM public.claims c WHERE c.image_id = img
                 AND c.expires > EXTRACT(EPOCH FROM clock_timestamp())
                 AND public.segstudio_claim_user(c.owner) = session_user);
END $$;

-- an image a model run may write: nobody holds it and it is no person's work yet (new or predicted)
CREATE OR REPLACE FUNCTION public.segstudio_free(img bigint) RETURNS boolean LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp AS $$
  SELECT NOT EXISTS (SELECT 1 FROM public.claims c WHERE c.image_id = img
                     AND c.expires > EXTRACT(EPOCH FROM clock_timestamp()))
     AND EXISTS (SELECT 1 FROM public.images i WHERE i.id = img AND i.status IN ('new', 'predicted'))
$$;

CREATE OR REPLACE FUNCTION public.segstudio_notify() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE r record;
BEGIN
  IF TG_OP = 'DELETE' THEN r := OLD; ELSE r := NEW; END IF;
  IF TG_LEVEL = 'STATEMENT' THEN
    PERFORM pg_notify('segstudio', json_build_object('t', TG_TABLE_NAME)::text);
  ELSIF TG_TABLE_NAME = 'images' THEN
    PERFORM pg_notify('segstudio', json_build_object('t', 'image', 'id', r.id)::text);
  ELSIF TG_TABLE_NAME = 'claims' THEN
    PERFORM pg_notify('segstudio', json_build_object('t', 'claim', 'id', r.image_id)::text);
  ELSIF TG_TABLE_NAME = 'regions' THEN
    PERFORM pg_notify('segstudio', json_build_object('t', 'regions', 'id', r.image_id)::text);
  END IF;
  RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION public.segstudio_history_who() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF NOT public.segstudio_is_owner() THEN
    NEW.who := session_user;
    NEW.at := EXTRACT(EPOCH FROM clock_timestamp());
  END IF;
  RETURN NEW;
END $$;

-- review is a reviewer's: accepting, returning, the note; a status change by anyone else takes an
-- acceptance back (what was accepted is not what is there any more)
CREATE OR REPLACE FUNCTION public.segstudio_review_check() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE reviewer boolean := public.segstudio_member('reviewer');
BEGIN
  IF reviewer THEN RETURN NEW; END IF;
  IF TG_OP = 'INSERT' THEN
    IF NEW.review IS NOT NULL OR NEW.note IS NOT NULL THEN
      RAISE EXCEPTION 'only a reviewer may accept or return an image' USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
  END IF;
  IF (NEW.review IS NOT NULL AND NEW.review IS DISTINCT FROM OLD.review) OR NEW.note IS DISTINCT FROM OLD.note THEN
    RAISE EXCEPTION 'only a reviewer may accept or return an image' USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF NEW.status IS DISTINCT FROM OLD.status AND NEW.review = 'accepted' THEN
    NEW.review := NULL;
  END IF;
  RETURN NEW;
END $$;

-- one holder per image, whatever a client sends (a lead takes over by deleting the others first), and
-- no claim that outlives its holder by more than CLAIM_MAX_S
CREATE OR REPLACE FUNCTION public.segstudio_claim_check() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE now_s double precision := EXTRACT(EPOCH FROM clock_timestamp());
BEGIN
  IF public.segstudio_is_owner() THEN RETURN NEW; END IF;
  PERFORM pg_advisory_xact_lock(%(lock)d);
  IF NEW.expires > now_s + %(claim_max)d THEN NEW.expires := now_s + %(claim_max)d; END IF;
  IF EXISTS (SELECT 1 FROM public.claims c WHERE c.image_id = NEW.image_id AND c.owner <> NEW.owner
             AND c.expires > now_s) THEN
    RAISE EXCEPTION 'image %% is being edited by someone else', NEW.image_id USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN NEW;
END $$;

-- regions that change under an acceptance take it back, whoever writes them (the app does it too; the
-- owner's raw writes, such as a copy into the database, are trusted as written)
CREATE OR REPLACE FUNCTION public.segstudio_unaccept() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE r record;
BEGIN
  IF public.segstudio_is_owner() THEN RETURN NULL; END IF;
  IF TG_OP = 'DELETE' THEN r := OLD; ELSE r := NEW; END IF;
  UPDATE public.images SET review = NULL WHERE id = r.image_id AND review = 'accepted';
  RETURN NULL;
END $$;

-- an image someone else has open keeps its status until they let it go (a lead may change it)
CREATE OR REPLACE FUNCTION public.segstudio_status_check() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF NEW.status IS DISTINCT FROM OLD.status AND NOT public.segstudio_member('lead')
     AND EXISTS (SELECT 1 FROM public.claims c WHERE c.image_id = NEW.id
                 AND c.expires > EXTRACT(EPOCH FROM clock_timestamp())
                 AND public.segstudio_claim_user(c.owner) IS DISTINCT FROM session_user::text) THEN
    RAISE EXCEPTION 'image %% is being edited by someone else', NEW.id USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN NEW;
END $$;

DROP TRIGGER IF EXISTS regions_unaccept ON regions;
CREATE TRIGGER regions_unaccept AFTER INSERT OR UPDATE OR DELETE ON regions FOR EACH ROW
  EXECUTE FUNCTION public.segstudio_unaccept();
DROP TRIGGER IF EXISTS images_status_check ON images;
CREATE TRIGGER images_status_check BEFORE UPDATE OF status ON images FOR EACH ROW
  EXECUTE FUNCTION public.segstudio_status_check();
DROP TRIGGER IF EXISTS images_notify ON images;
CREATE TRIGGER images_notify AFTER UPDATE OF status, review, note, missing, width, height, error ON images
  FOR EACH ROW EXECUTE FUNCTION public.segstudio_notify();
DROP TRIGGER IF EXISTS images_added_notify ON images;
CREATE TRIGGER images_added_notify AFTER INSERT ON images FOR EACH STATEMENT EXECUTE FUNCTION public.segstudio_notify();
DROP TRIGGER IF EXISTS claims_notify ON claims;
CREATE TRIGGER claims_notify AFTER INSERT OR DELETE ON claims FOR EACH ROW EXECUTE FUNCTION public.segstudio_notify();
DROP TRIGGER IF EXISTS claims_owner_notify ON claims;
CREATE TRIGGER claims_owner_notify AFTER UPDATE ON claims FOR EACH ROW
  WHEN (OLD.owner IS DISTINCT FROM NEW.owner) EXECUTE FUNCTION public.segstudio_notify();
DROP TRIGGER IF EXISTS regions_notify ON regions;
CREATE TRIGGER regions_notify AFTER INSERT OR UPDATE OR DELETE ON regions FOR EACH ROW
  EXECUTE FUNCTION public.segstudio_notify();
DROP TRIGGER IF EXISTS classes_notify ON classes;
CREATE TRIGGER classes_notify AFTER INSERT OR UPDATE OR DELETE ON classes FOR EACH STATEMENT
  EXECUTE FUNCTION public.segstudio_notify();
DROP TRIGGER IF EXISTS settings_notify ON settings;
CREATE TRIGGER settings_notify AFTER INSERT OR UPDATE OR DELETE ON settings FOR EACH STATEMENT
  EXECUTE FUNCTION public.segstudio_notify();
DROP TRIGGER IF EXISTS history_who ON history;
CREATE TRIGGER history_who BEFORE INSERT ON history FOR EACH ROW EXECUTE FUNCTION public.segstudio_history_who();
DROP TRIGGER IF EXISTS images_review_check ON images;
CREATE TRIGGER images_review_check BEFORE INSERT OR UPDATE OF review, note, status ON images FOR EACH ROW
  EXECUTE FUNCTION public.segstudio_review_check();
DROP TRIGGER IF EXISTS claims_check ON claims;
CREATE TRIGGER claims_check BEFORE INSERT OR UPDATE ON claims FOR EACH ROW
  EXECUTE FUNCTION public.segstudio_claim_check();
""" % {"lock": WRITE_LOCK, "claim_max": CLAIM_MAX_S}  # two integer constants, never a user's value

# Least privilege, by group role, column by column where a column matters. Annotators read everything;
# write regions only on an image they hold (a model's regions also on an image nobody holds that is no
# person's work yet: model runs and Ray predict), and their own claims; add images found by a scan
# (their paths only), set statuses and what decoding finds, add history rows (who and when are the
# server's), and keep the model index (a learner's versions: each entry a file on the machine that
# trained it, which other machines pass over). They never touch classes or settings, never rename or
# delete an image, never review, never change history, never choose an id. Reviewers are annotators who
# may also accept and return (the review trigger; the note). Leads also own classes, settings (review on
# or off), taking over a claim and deleting images. The three groups are this database's own (named
# DB_annotator, DB_reviewer, DB_lead; kept in meta): a lead of one project is nobody in another. Who may
# CONNECT to the database is granted person by person (`add_member`), nobody else.
_GRANTS = """
GRANT {reviewer} TO {lead};
GRANT {annotator} TO {reviewer};
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {annotator}, {reviewer}, {lead};
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO {annotator};
GRANT SELECT ON ALL TABLES IN SCHEMA public TO {annotator};
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {annotator};
GRANT INSERT, UPDATE, DELETE ON regions, claims TO {annotator};
GRANT INSERT (path) ON images TO {annotator};
GRANT UPDATE (status, review, updated, width, height, hash, error, missing, uncertainty) ON images TO {annotator};
GRANT UPDATE (note) ON images TO {reviewer};
GRANT INSERT (image_id, who, at, what, detail) ON history TO {annotator};
GRANT INSERT (path, kind, created, metrics), UPDATE (kind, created, metrics), DELETE ON models TO {annotator};
GRANT INSERT, UPDATE ON containers TO {annotator};
GRANT INSERT (name, next), UPDATE (next) ON counters TO {annotator};
GRANT INSERT, UPDATE, DELETE ON classes, settings TO {lead};
GRANT INSERT (id, path), UPDATE (path), DELETE ON images TO {lead};
"""

_POLICIES = """
ALTER TABLE regions ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS regions_read ON regions;
CREATE POLICY regions_read ON regions FOR SELECT USING (true);
DROP POLICY IF EXISTS regions_write ON regions;
CREATE POLICY regions_write ON regions FOR ALL
  USING (public.segstudio_holds(image_id) OR (source <> 'manual' AND public.segstudio_free(image_id)))
  WITH CHECK (public.segstudio_holds(image_id) OR (source <> 'manual' AND public.segstudio_free(image_id)));
ALTER TABLE claims ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS claims_read ON claims;
CREATE POLICY claims_read ON claims FOR SELECT USING (true);
DROP POLICY IF EXISTS claims_write ON claims;
CREATE POLICY claims_write ON claims FOR ALL
  USING (public.segstudio_claim_user(owner) = session_user OR expires <= EXTRACT(EPOCH FROM clock_timestamp())
         OR public.segstudio_member('lead'))
  WITH CHECK (public.segstudio_claim_user(owner) = session_user);
"""


def group_names(c) -> dict[str, str] | None:
    """This project's group role of each kind, as set up (None: the roles are not set up)."""
    rows = dict(c.raw.execute("SELECT key, value FROM meta WHERE key = ANY(%s)",
                              ([ROLE_KEY + k for k in KINDS],)).fetchall())
    names = {k: rows.get(ROLE_KEY + k) for k in KINDS}
    return {k: str(v) for k, v in names.items()} if all(isinstance(v, str) and v for v in names.values()) else None


def _new_group_names(db: str, oid: int) -> dict[str, str]:
    """DB_annotator ... where that fits PostgreSQL's 63 bytes, else segstudio_OID_annotator."""
    names = {k: f"{db}_{k}" for k in KINDS}
    if any(len(n.encode("utf-8")) > 63 for n in names.values()):
        names = {k: f"segstudio_{oid}_{k}" for k in KINDS}
    return names


def install_extras(c) -> None:
    """The functions and triggers, once per EXTRAS_VERSION (inside the caller's migration transaction).
    Only the tables' owner may (re)create them: an annotator's client opening a project whose owner has
    not opened it since an upgrade carries on with the ones in place."""
    row = c.execute("SELECT value FROM meta WHERE key='pg_extras'").fetchone()
    if row is not None and row[0] == EXTRAS_VERSION:
        return
    try:
        with c.raw.transaction():  # a savepoint: a refusal leaves the migration's transaction usable
            c.raw.execute(_EXTRAS)
            c.execute("INSERT INTO meta(key, value) VALUES ('pg_extras', ?) ON CONFLICT(key) DO UPDATE "
                      "SET value=excluded.value", (EXTRAS_VERSION,))
    except pg_errors.InsufficientPrivilege as e:
        if row is None:
            raise
        log.warning("the project's triggers are version %s, this segstudio's %s: the project's owner opens it "
                    "once to bring them up to date (%s)", row[0], EXTRAS_VERSION, str(e).strip().splitlines()[0])


def setup_roles(c) -> dict[str, str]:
    """Create this project's group roles and give each its privileges (run by the project's owner, again
    after an upgrade; every step may run twice). Nobody may connect to the database or make temporary
    tables in it but its owner and the people `add_member` lets in. Returns the groups' names."""
    with c.raw.transaction():
        db, oid = c.raw.execute("SELECT current_database(), oid FROM pg_catalog.pg_database "
                                "WHERE datname = current_database()").fetchone()
        names = group_names(c) or _new_group_names(str(db), int(oid))
        for kind in KINDS:
            if c.raw.execute("SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = %s", (names[kind],)).fetchone() is None:
                c.raw.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(names[kind])))
            c.raw.execute("INSERT INTO meta(key, value) VALUES (%s, %s) ON CONFLICT(key) DO UPDATE "
                          "SET value=excluded.value", (ROLE_KEY + kind, names[kind]))
        ids = {k: sql.Identifier(v) for k, v in names.items()}
        c.raw.execute(sql.SQL(_GRANTS).format(**ids))
        c.raw.execute(_POLICIES)
        c.raw.execute(sql.SQL("REVOKE CONNECT, TEMPORARY ON DATABASE {} FROM PUBLIC").format(sql.Identifier(db)))
    return names


def add_member(c, login: str, role: str) -> None:
    """Make the existing login role `login` an annotator, reviewer or lead of this project, and only
    that in this project (its other groups here are taken back; other projects are not touched),
    allowed to connect to it."""
    names = group_names(c)
    if names is None:
        raise StoreError("the team's roles are not set up in this database: run `segstudio store init URL "
                         "--roles` first (as the project's owner)")
    with c.raw.transaction():
        for kind, group in names.items():
            if kind != role:
                c.raw.execute(sql.SQL("REVOKE {} FROM {}").format(sql.Identifier(group), sql.Identifier(login)))
        c.raw.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(names[role]), sql.Identifier(login)))
        db = c.raw.execute("SELECT current_database()").fetchone()[0]
        c.raw.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(db), sql.Identifier(login)))


def remove_member(c, login: str) -> None:
    """Take `login` out of this project: out of its groups, and no longer allowed to connect."""
    names = group_names(c)
    with c.raw.transaction():
        for group in (names or {}).values():
            c.raw.execute(sql.SQL("REVOKE {} FROM {}").format(sql.Identifier(group), sql.Identifier(login)))
        db = c.raw.execute("SELECT current_database()").fetchone()[0]
        c.raw.execute(sql.SQL("REVOKE CONNECT ON DATABASE {} FROM {}").format(sql.Identifier(db),
                                                                             sql.Identifier(login)))


def members(c) -> list[tuple[str, str]]:
    """(login, kind) of everyone in this project's groups (directly: a lead is not listed as a reviewer)."""
    names = group_names(c)
    if names is None:
        return []
    kind_of = {v: k for k, v in names.items()}
    rows = c.raw.execute(
        "SELECT m.rolname, g.rolname FROM pg_catalog.pg_auth_members a "
        "JOIN pg_catalog.pg_roles g ON g.oid = a.roleid JOIN pg_catalog.pg_roles m ON m.oid = a.member "
        "WHERE g.rolname = ANY(%s) AND m.rolcanlogin ORDER BY m.rolname", (list(names.values()),)).fetchall()
    return [(str(m), kind_of[str(g)]) for m, g in rows]


def foreign_tables(c) -> list[str]:
    """Tables in the database's schema that are not a segstudio project's (a database of another app)."""
    return [r[0] for r in c.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
                                    "ORDER BY tablename")]


_SETVAL = {table: ("SELECT setval(pg_get_serial_sequence(?, 'id'), COALESCE((SELECT MAX(id) FROM %s), 1), "
                    "(SELECT MAX(id) FROM %s) IS NOT NULL)" % (table, table))
           for table in ("images", "models", "history")}  # fixed table names, never a user's


def reset_identity(t, table: str) -> None:
    """After rows with their own ids were copied in, the next id a table hands out follows them."""
    if table in _SETVAL:
        t.execute(_SETVAL[table], (table,))
