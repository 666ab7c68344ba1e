-- Generated from sql/0015_statement_capture.sql by `npm run supabase:migrations`: do not edit (edit sql/0015_statement_capture.sql and run that again).
-- 0015 Change capture once per statement (issue 17): every local write paid a trigger call, a log
-- INSERT, a row_state upsert and an audit INSERT per row; a 10,000-row statement now pays one of
-- each. The per-row capture trigger of every synced table (cv_sync_capture, 0005) becomes three
-- statement triggers with transition tables (PostgreSQL allows them only one event per trigger):
-- cv_sync_capture_insert, _update and _delete, under the same WHEN (no sync apply). The audit
-- trail's trigger on the change log (cv_audit_record_change, 0012) becomes a statement trigger over
-- the statement's new entries, writing the same events. What the log and the trail hold does not
-- change, row for row (PROTOCOL.md "Capture"); functions/05_capture.sql explains how.
--
-- The two function bodies below are the same as functions/05_capture.sql's, by design: this file
-- creates the triggers that name them, and the files of functions/ run only after every numbered
-- migration. Later changes go to functions/05_capture.sql only (sql/README.md "Changing a
-- function"); it runs after this file and replaces both.
--
-- The clinic server also hears of each captured statement: NOTIFY cv_sync_change, which the sync
-- daemon listens to so it starts a cycle at once (never on the cloud; see cv_sync.capture).

-- cv_sync.capture(): AFTER INSERT / UPDATE / DELETE … FOR EACH STATEMENT on every synced table,
-- one trigger per event (PostgreSQL allows transition tables only so), with the statement's rows as
-- `new_rows` (INSERT, UPDATE) and `old_rows` (UPDATE, DELETE). It writes the log exactly as the
-- per-row capture did, row for row, in one INSERT into the log and one upsert of row_state per
-- statement (PROTOCOL.md "Capture"):
--   - each row its own entry and its own HLC, taken in the order the statement wrote the rows (the
--     order of its transition table), so seq and the HLC's logical part order them as before;
--   - INSERT: the row's version and base_version, no changed_columns;
--   - UPDATE: base_version the replaced version, changed_columns the columns that differ from the
--     replaced row (meta columns left out: every edit changes them), in key order;
--   - DELETE: a version of its own, base_version the last one, the last image, a tombstone.
-- SECURITY DEFINER because it runs in app sessions, which must not be able to write the log
-- themselves. The triggers' WHEN clause keeps a sync apply's statements out of this function
-- (cv_sync.guard makes sure the setting it reads means a real apply), so a replicated row is never
-- logged again and never notifies; PostgreSQL still copies it into the transition tables, the one
-- cost it pays here.
--
-- An UPDATE's rows are paired by the version chain, not by position: cv_touch_row (0002, fired
-- under the same WHEN) gives every updated row base_version = the replaced row's version, so the
-- new row (id, base_version) has exactly one old row (id, version). One query can write the same
-- row twice and hand both writes to one statement trigger (a data-modifying CTE and the
-- ON DELETE SET NULL cascade it causes share one transition table): the chain pairs each write
-- with the image it replaced, both are logged, and row_state keeps the later one. An old row left
-- without a partner is a row whose id changed (CV007): it would be left behind on every peer.
--
-- On the clinic server (it has a clinic signing key, 0003) a statement that logged a row also
-- sends NOTIFY cv_sync_change, so the sync daemon starts a cycle at once instead of at its next
-- tick. Never on the cloud: NOTIFY takes a lock shared by the whole server at commit, and nothing
-- there listens. Asked once per statement, not per row.
CREATE OR REPLACE FUNCTION cv_sync.capture() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = ''
AS $$
DECLARE
  v_node uuid;
  v_floor bigint;
  v_author jsonb;
  v_moved uuid;
  v_logged bigint;
BEGIN
  SELECT n.node_id, n.hlc_floor INTO v_node, v_floor FROM cv_sync.node n;
  v_author := cv_sync.current_author();

  IF TG_OP = 'INSERT' THEN
    WITH entry AS (
      INSERT INTO cv_sync.change_log (table_name, row_id, op, row_data, version, base_version, origin, hlc,
        changed_columns, author)
      SELECT TG_TABLE_NAME, x.id, 'upsert', to_jsonb(x), x.version, x.base_version, v_node, cv_sync.hlc(v_floor, v_node),
        NULL, v_author
      FROM new_rows x
      RETURNING table_name, row_id, op, version, origin, hlc, txid, seq
    )
    INSERT INTO cv_sync.row_state AS s (table_name, row_id, version, hlc, origin, deleted, deleted_at, txid, seq)
    SELECT DISTINCT ON (e.row_id) e.table_name, e.row_id, e.version, e.hlc, e.origin, false, NULL, e.txid, e.seq
    FROM entry e
    ORDER BY e.row_id, e.seq DESC
    ON CONFLICT (table_name, row_id) DO UPDATE SET
      version = excluded.version, hlc = excluded.hlc, origin = excluded.origin, deleted = excluded.deleted,
      deleted_at = excluded.deleted_at, txid = excluded.txid, seq = excluded.seq;

  ELSIF TG_OP = 'UPDATE' THEN
    SELECT o.id INTO v_moved FROM old_rows o
    WHERE NOT EXISTS (SELECT FROM new_rows n WHERE n.id = o.id AND n.base_version = o.version)
    LIMIT 1;
    IF FOUND THEN
      RAISE EXCEPTION 'the id of a synced row cannot change (%.% %)', TG_TABLE_SCHEMA, TG_TABLE_NAME, v_moved
        USING ERRCODE = 'CV007', HINT = 'insert a new row and delete the old one';
    END IF;
    -- MATERIALIZED: each replaced image is built once; inlined, it would be rebuilt for every
    -- column compared below (ten times the cost of the whole capture).
    WITH old AS MATERIALIZED (
      SELECT y.id, y.version, to_jsonb(y) AS row_data FROM old_rows y
    ), entry AS (
      INSERT INTO cv_sync.change_log (table_name, row_id, op, row_data, version, base_version, origin, hlc,
        changed_columns, author)
      SELECT TG_TABLE_NAME, c.id, 'upsert', c.row_data, c.version, c.base_version, v_node, cv_sync.hlc(v_floor, v_node),
        c.changed, v_author
      -- The ORDER BY keeps this subquery whole, so the HLC and seq above are taken in write order.
      FROM (
        SELECT n.ord, n.id, n.row_data, n.version, n.base_version,
          (SELECT coalesce(array_agg(k.key ORDER BY k.key), '{}') FROM jsonb_each(n.row_data) k
            WHERE k.key NOT IN ('created_at', 'updated_at', 'version', 'base_version', 'created_by', 'updated_by')
              AND k.value IS DISTINCT FROM o.row_data -> k.key) AS changed
        FROM (SELECT row_number() OVER () AS ord, x.id, to_jsonb(x) AS row_data, x.version, x.base_version
          FROM new_rows x) n
        JOIN old o ON o.id = n.id AND o.version = n.base_version
        ORDER BY n.ord
      ) c
      RETURNING table_name, row_id, op, version, origin, hlc, txid, seq
    )
    -- One row written twice by one query: its later write is its state.
    INSERT INTO cv_sync.row_state AS s (table_name, row_id, version, hlc, origin, deleted, deleted_at, txid, seq)
    SELECT DISTINCT ON (e.row_id) e.table_name, e.row_id, e.version, e.hlc, e.origin, false, NULL, e.txid, e.seq
    FROM entry e
    ORDER BY e.row_id, e.seq DESC
    ON CONFLICT (table_name, row_id) DO UPDATE SET
      version = excluded.version, hlc = excluded.hlc, origin = excluded.origin, deleted = excluded.deleted,
      deleted_at = excluded.deleted_at, txid = excluded.txid, seq = excluded.seq;

  ELSE
    WITH entry AS (
      INSERT INTO cv_sync.change_log (table_name, row_id, op, row_data, version, base_version, origin, hlc,
        changed_columns, author)
      SELECT TG_TABLE_NAME, x.id, 'delete', to_jsonb(x), gen_random_uuid(), x.version, v_node,
        cv_sync.hlc(v_floor, v_node), NULL, v_author
      FROM old_rows x
      RETURNING table_name, row_id, op, version, origin, hlc, txid, seq
    )
    INSERT INTO cv_sync.row_state AS s (table_name, row_id, version, hlc, origin, deleted, deleted_at, txid, seq)
    SELECT DISTINCT ON (e.row_id) e.table_name, e.row_id, e.version, e.hlc, e.origin, true, now(), e.txid, e.seq
    FROM entry e
    ORDER BY e.row_id, e.seq DESC
    ON CONFLICT (table_name, row_id) DO UPDATE SET
      version = excluded.version, hlc = excluded.hlc, origin = excluded.origin, deleted = excluded.deleted,
      deleted_at = excluded.deleted_at, txid = excluded.txid, seq = excluded.seq;
  END IF;

  GET DIAGNOSTICS v_logged = ROW_COUNT;
  IF v_logged > 0 AND to_regclass('cv_auth.signing_key') IS NOT NULL THEN
    PERFORM pg_notify('cv_sync_change', '');
  END IF;
  RETURN NULL;
END
$$;

-- cv_audit.record_change(): AFTER INSERT … FOR EACH STATEMENT on the change log, its rows as
-- `new_entries`. Every entry made here (received_from NULL) is an event; a 'rescope' entry (0005)
-- is none: nobody changed the row. The same events as the per-row trigger wrote, in the same
-- order (the log's seq): `written`, `at` and event_id are taken row by row as before, and the seal
-- hashes only what is stored, so the chain is the same chain.
CREATE OR REPLACE FUNCTION cv_audit.record_change() RETURNS trigger
  LANGUAGE plpgsql
  SET search_path = ''
AS $$
BEGIN
  INSERT INTO cv_audit.events (node_id, author, action, table_name, row_id, patient_id, version, changed_columns)
  SELECT e.origin, e.author,
    CASE WHEN e.op = 'delete' THEN 'delete' WHEN e.base_version IS NULL THEN 'insert' ELSE 'update' END,
    e.table_name, e.row_id, cv_audit.patient_of(e.table_name, e.row_data), e.version, e.changed_columns
  -- The ORDER BY keeps this subquery whole, so `written` follows seq.
  FROM (SELECT * FROM new_entries x WHERE x.received_from IS NULL AND x.op <> 'rescope' ORDER BY x.seq) e;
  RETURN NULL;
END
$$;

REVOKE ALL ON FUNCTION cv_audit.record_change() FROM PUBLIC;

-- Swap the triggers. A statement trigger fires once per statement, even one that wrote no row
-- (the functions then log nothing and do not notify).
DO $install$
DECLARE
  v_table text;
  v_origin constant text := 'coalesce(pg_catalog.current_setting(''centrovision.sync_origin'', true), '''')';
BEGIN
  FOR v_table IN SELECT table_name FROM cv_sync.synced_tables ORDER BY position LOOP
    EXECUTE format('DROP TRIGGER cv_sync_capture ON public.%I', v_table);
    EXECUTE format('CREATE TRIGGER cv_sync_capture_insert AFTER INSERT ON public.%I REFERENCING NEW TABLE AS new_rows '
      'FOR EACH STATEMENT WHEN (%s = '''') EXECUTE FUNCTION cv_sync.capture()', v_table, v_origin);
    EXECUTE format('CREATE TRIGGER cv_sync_capture_update AFTER UPDATE ON public.%I '
      'REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows '
      'FOR EACH STATEMENT WHEN (%s = '''') EXECUTE FUNCTION cv_sync.capture()', v_table, v_origin);
    EXECUTE format('CREATE TRIGGER cv_sync_capture_delete AFTER DELETE ON public.%I REFERENCING OLD TABLE AS old_rows '
      'FOR EACH STATEMENT WHEN (%s = '''') EXECUTE FUNCTION cv_sync.capture()', v_table, v_origin);
  END LOOP;
END
$install$;

DROP TRIGGER cv_audit_record_change ON cv_sync.change_log;
CREATE TRIGGER cv_audit_record_change AFTER INSERT ON cv_sync.change_log REFERENCING NEW TABLE AS new_entries
  FOR EACH STATEMENT EXECUTE FUNCTION cv_audit.record_change();

CALL cv_sync.grant_rpc();

-- What `centrovision-sync cloud migrate` records: the project counts as having sql/0015_statement_capture.sql.
  create schema if not exists cv_meta;
  revoke all on schema cv_meta from public;
  do $cv_meta$
  declare
    v_role text;
  begin
    if to_regclass('public.cv_schema_migrations') is not null and to_regclass('cv_meta.schema_migrations') is null then
      alter table public.cv_schema_migrations set schema cv_meta;
      alter table cv_meta.cv_schema_migrations rename to schema_migrations;
      for v_role in select rolname from pg_roles where rolname in ('anon', 'authenticated', 'service_role') loop
        execute format('revoke all on cv_meta.schema_migrations from %I', v_role);
      end loop;
    end if;
  end
  $cv_meta$;
  create table if not exists cv_meta.schema_migrations (
    name text primary key,
    checksum text not null,
    applied_at timestamptz not null default now()
  );
insert into cv_meta.schema_migrations (name, checksum) values ('0015_statement_capture.sql', '4bc907566afa948ee7f640b141e41f820b305f6fc3d2be08b892b3127b817be0') on conflict (name) do nothing;
