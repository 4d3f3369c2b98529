"""What a PostgreSQL project has beyond the shared schema: the triggers that tell listening clients
what changed (NOTIFY), that stamp history with the server's user, and that keep review to reviewers;
the group roles of a team and their privileges (`setup_roles`); and the id sequences after a copy.

Role names are fixed constants (never a user's input); a person's login role is named by the lead
and composed with psycopg's sql.Identifier, never by string formatting.
"""

from __future__ import annotations

from psycopg import sql

EXTRAS_VERSION = "1"
CHANNEL = "segstudio"
ANNOTATOR, REVIEWER, LEAD = "segstudio_annotator", "segstudio_reviewer", "segstudio_lead"
ROLES = {"annotator": ANNOTATOR, "reviewer": REVIEWER, "lead": LEAD}

# The owner (whoever created the tables: the lead's setup, or a copy into the database) is trusted as
# written; anyone else's history rows carry the server's session user, whatever the client sent.
_EXTRAS = """
CREATE OR REPLACE FUNCTION segstudio_is_owner() RETURNS boolean LANGUAGE sql STABLE AS $$
  SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = session_user AND rolsuper)
      OR session_user = (SELECT tableowner FROM pg_tables WHERE schemaname = current_schema() AND tablename = 'images')
$$;

CREATE OR REPLACE FUNCTION segstudio_notify() RETURNS trigger LANGUAGE plpgsql AS $$
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

CREATE OR REPLACE FUNCTION segstudio_history_who() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NOT segstudio_is_owner() THEN
    NEW.who := session_user;
    NEW.at := EXTRACT(EPOCH FROM clock_timestamp());
  END IF;
  RETURN NEW;
END $$;

CREATE OR REPLACE FUNCTION segstudio_review_check() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.review IS NOT NULL AND NEW.review IS DISTINCT FROM OLD.review AND NOT segstudio_is_owner()
     AND EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'segstudio_reviewer')
     AND NOT pg_has_role(session_user, 'segstudio_reviewer', 'MEMBER') THEN
    RAISE EXCEPTION 'only a reviewer may accept or return an image' USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN NEW;
END $$;

DROP TRIGGER IF EXISTS images_notify ON images;
CREATE TRIGGER images_notify AFTER UPDATE OF status, review, note, missing, width, height, error ON images
  FOR EACH ROW EXECUTE FUNCTION segstudio_notify();
DROP TRIGGER IF EXISTS images_added_notify ON images;
CREATE TRIGGER images_added_notify AFTER INSERT ON images FOR EACH STATEMENT EXECUTE FUNCTION segstudio_notify();
DROP TRIGGER IF EXISTS claims_notify ON claims;
CREATE TRIGGER claims_notify AFTER INSERT OR DELETE ON claims FOR EACH ROW EXECUTE FUNCTION segstudio_notify();
DROP TRIGGER IF EXISTS claims_owner_notify ON claims;
CREATE TRIGGER claims_owner_notify AFTER UPDATE ON claims FOR EACH ROW
  WHEN (OLD.owner IS DISTINCT FROM NEW.owner) EXECUTE FUNCTION segstudio_notify();
DROP TRIGGER IF EXISTS regions_notify ON regions;
CREATE TRIGGER regions_notify AFTER INSERT OR UPDATE OR DELETE ON regions FOR EACH ROW
  EXECUTE FUNCTION segstudio_notify();
DROP TRIGGER IF EXISTS classes_notify ON classes;
CREATE TRIGGER classes_notify AFTER INSERT OR UPDATE OR DELETE ON classes FOR EACH STATEMENT
  EXECUTE FUNCTION segstudio_notify();
DROP TRIGGER IF EXISTS settings_notify ON settings;
CREATE TRIGGER settings_notify AFTER INSERT OR UPDATE OR DELETE ON settings FOR EACH STATEMENT
  EXECUTE FUNCTION segstudio_notify();
DROP TRIGGER IF EXISTS history_who ON history;
CREATE TRIGGER history_who BEFORE INSERT ON history FOR EACH ROW EXECUTE FUNCTION segstudio_history_who();
DROP TRIGGER IF EXISTS images_review_check ON images;
CREATE TRIGGER images_review_check BEFORE UPDATE OF review ON images FOR EACH ROW
  EXECUTE FUNCTION segstudio_review_check();
"""

# Least privilege, by group role. Annotators read everything, write regions and claims (only on an
# image they hold: the policies below), statuses and what a scan finds, the model index (a learner's
# versions: each entry a file on the machine that trained it, which other machines pass over), and
# add history; they never touch classes or settings, and never delete an image or anyone's history. Reviewers are
# annotators who may also accept and return (the review trigger). Leads also own the project's
# setup: classes, settings (review on/off), model index, deleting images, taking over a claim.
_ROLES = """
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'segstudio_annotator') THEN
    CREATE ROLE segstudio_annotator NOLOGIN; END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'segstudio_reviewer') THEN
    CREATE ROLE segstudio_reviewer NOLOGIN; END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'segstudio_lead') THEN
    CREATE ROLE segstudio_lead NOLOGIN; END IF;
END $$;
GRANT segstudio_annotator TO segstudio_reviewer;
GRANT segstudio_reviewer TO segstudio_lead;
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM PUBLIC;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO segstudio_annotator;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO segstudio_annotator;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO segstudio_annotator;
GRANT INSERT, UPDATE, DELETE ON regions, claims, models TO segstudio_annotator;
GRANT INSERT ON history TO segstudio_annotator;
GRANT INSERT, UPDATE ON images, containers, counters TO segstudio_annotator;
GRANT INSERT, UPDATE, DELETE ON classes, settings TO segstudio_lead;
GRANT DELETE ON images TO segstudio_lead;
ALTER TABLE regions ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS regions_read ON regions;
CREATE POLICY regions_read ON regions FOR SELECT USING (true);
DROP POLICY IF EXISTS regions_write ON regions;
CREATE POLICY regions_write ON regions FOR ALL USING (segstudio_holds(image_id)) WITH CHECK (segstudio_holds(image_id));
ALTER TABLE claims ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS claims_read ON claims;
CREATE POLICY claims_read ON claims FOR SELECT USING (true);
DROP POLICY IF EXISTS claims_write ON claims;
CREATE POLICY claims_write ON claims FOR ALL
  USING (split_part(owner, '@', 1) = session_user OR expires <= EXTRACT(EPOCH FROM clock_timestamp())
         OR pg_has_role(session_user, 'segstudio_lead', 'MEMBER'))
  WITH CHECK (split_part(owner, '@', 1) = session_user);
"""

# An annotator writes regions only on an image they hold (a live claim of theirs); a lead anywhere
# (model runs over the folder, class deletes).
_HOLDS = """
CREATE OR REPLACE FUNCTION segstudio_holds(img bigint) RETURNS boolean LANGUAGE sql STABLE AS $$
  SELECT pg_has_role(session_user, 'segstudio_lead', 'MEMBER') OR EXISTS (
    SELECT 1 FROM claims WHERE claims.image_id = img AND split_part(claims.owner, '@', 1) = session_user
      AND claims.expires > EXTRACT(EPOCH FROM clock_timestamp()))
$$;
"""


def install_extras(c) -> None:
    """The triggers, once per EXTRAS_VERSION (inside the caller's migration transaction)."""
    row = c.execute("SELECT value FROM meta WHERE key='pg_extras'").fetchone()
    if row is not None and row[0] == EXTRAS_VERSION:
        return
    c.raw.execute(_EXTRAS)
    c.execute("INSERT INTO meta(key, value) VALUES ('pg_extras', ?) ON CONFLICT(key) DO UPDATE "
              "SET value=excluded.value", (EXTRAS_VERSION,))


def setup_roles(c) -> None:
    """Create the team's group roles and give each its privileges (run by the project's owner, again
    after an upgrade; every step may run twice)."""
    with c.raw.transaction():
        c.raw.execute(_HOLDS)
        c.raw.execute(_ROLES)


def add_member(c, login: str, role: str) -> None:
    """Make the existing login role `login` an annotator, reviewer or lead of this project."""
    group = ROLES[role]
    with c.raw.transaction():
        c.raw.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(group), sql.Identifier(login)))
        db = c.raw.execute("SELECT current_database()").fetchone()[0]
        c.raw.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(db), sql.Identifier(login)))


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
