-- Run by deploy/local/infra.py on every start of the local PostgreSQL, in the database that
-- FerretDB uses (idempotent). Why: docs/adr/0012-local-database-ferretdb-on-postgresql.md.
--
-- FerretDB 1.24 creates, for every collection, a table (_jsonb jsonb) with a unique btree index
-- on (_jsonb->'_id'), but looks documents up by `_jsonb->$1 @> $2`: containment, with the key
-- as a parameter, which that index cannot serve, so every find, update, replace, delete or
-- upsert by _id read the whole table. A GIN index on the same expression serves `@>`; the
-- server runs with plan_cache_mode = force_custom_plan so that the key parameter is a constant
-- when the plan is made and the index matches. With both, those operations cost the same at
-- 100,000 documents as at 10,000 (measured: docs/performance.md). fastupdate = off: the GIN
-- pending list of fast updates is read linearly by every lookup until it is merged.
CREATE OR REPLACE FUNCTION parcours_index_id_for_containment() RETURNS event_trigger
LANGUAGE plpgsql AS $$
DECLARE
  created record;
BEGIN
  FOR created IN SELECT object_identity FROM pg_event_trigger_ddl_commands()
                 WHERE command_tag = 'CREATE TABLE' LOOP
    -- FerretDB's own metadata tables are looked up with `=`, which the btree index serves.
    IF created.object_identity NOT LIKE '%._ferretdb_%' THEN
      EXECUTE format(
        'CREATE INDEX ON %s USING gin ((_jsonb->''_id'') jsonb_path_ops) WITH (fastupdate = off)',
        created.object_identity);
    END IF;
  END LOOP;
END
$$;

DROP EVENT TRIGGER IF EXISTS parcours_index_id_for_containment;
CREATE EVENT TRIGGER parcours_index_id_for_containment ON ddl_command_end
  WHEN TAG IN ('CREATE TABLE')
  EXECUTE FUNCTION parcours_index_id_for_containment();
