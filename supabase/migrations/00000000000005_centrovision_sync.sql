-- Generated from sql/0005_sync.sql by `npm run supabase:migrations`: do not edit (edit sql/0005_sync.sql and run that again).
-- 0005 Sync machinery, part 1: schema cv_sync, node identity, HLC, change capture, permissions.
-- packages/sync-engine/PROTOCOL.md is the specification; 0005–0008 implement it:
--   0005 tables and capture   0006 read side (pull, cursors, snapshot, purge)
--   0007 apply building blocks   0008 conflicts, apply loop and the write-side RPC functions
--
-- Schema cv_sync holds the machinery. PostgREST exposes only `public`, so the RPC entry points
-- are public.cv_sync_* functions; cv_sync tables are reachable only through them.
--
-- Every public.cv_sync_* function is SECURITY DEFINER with search_path = '' and schema-qualified
-- names: it runs as the migration owner, so a caller's search_path cannot redirect a name to an
-- object of its own. EXECUTE goes to centrovision_sync and, on Supabase, service_role; nobody else.
-- Helpers in cv_sync run with their caller's rights (the owner's functions) and only the owner
-- can execute them; the trigger functions capture and guard are SECURITY DEFINER, explained where
-- they are defined. Nobody else has any privilege in schema cv_sync.
--
-- Why a trigger and not logical decoding: the cloud is Supabase, reachable only over PostgREST,
-- and the same file must run on both sides (see DESIGN.md "Sync protocol").

CREATE SCHEMA cv_sync;
REVOKE ALL ON SCHEMA cv_sync FROM PUBLIC;

-- The tables that sync, in foreign-key order (parents first): the SQL twin of SYNCED_TABLES in
-- packages/core/src/tables/table-names.ts (a test proves they agree). Everything below that
-- loops over tables reads this list, so a table is declared once here.
-- policy: how a concurrent edit is settled (PROTOCOL.md "Conflicts").
--   lww     last write wins by HLC, per column: edits to different columns merge.
--   manual  never decided by a machine (clinical values): the local row stays, the incoming one
--           is stored as an open conflict for review. Both sides must declare the same policy,
--           so it is part of the schema fingerprint.
CREATE TABLE cv_sync.synced_tables (
  table_name text PRIMARY KEY,
  position smallint NOT NULL UNIQUE,
  policy text NOT NULL DEFAULT 'lww' CONSTRAINT synced_tables_policy_check CHECK (policy IN ('lww', 'manual'))
);
INSERT INTO cv_sync.synced_tables (table_name, position) VALUES
  ('branches', 1), ('rooms', 2), ('profiles', 3), ('user_roles', 4), ('user_branches', 5),
  ('patients', 6), ('appointments', 7), ('encounters', 8), ('exam_eye', 9), ('diagnoses', 10);

-- This node. Created here, not by cv_sync_init, so capture works from the first write.
-- epoch changes only on an explicit re-initialisation (after a restore from backup): peers
-- compare it and refuse to resume an old cursor (CV001).
-- hlc_floor: the highest HLC physical part received from peers; a local stamp is always above
-- it, so an edit made after seeing a change orders after it even when this clock is slow.
-- max_clock_skew: how far ahead of this node's clock a timestamp from a client or a peer may be
-- (cv_sync.check_clock). A later one is refused (CV009): accepted, it would win every
-- last-write-wins decision until the clocks met and, through hlc_floor, drag every later stamp of
-- this node into the future with it. 5 minutes: NTP keeps servers within milliseconds, while a PC
-- whose clock was never synchronised drifts by about a minute a month; 5 minutes is also the
-- tolerance Kerberos (and so Windows sign-in) has long used by default, so a PC that can sign in
-- to its domain passes. An edit stamped that far ahead can win against edits of those 5 minutes
-- at most. Only the owner changes it: UPDATE cv_sync.node SET max_clock_skew = '2 minutes' WHERE singleton.
CREATE TABLE cv_sync.node (
  singleton boolean PRIMARY KEY DEFAULT true CONSTRAINT node_singleton CHECK (singleton),
  node_id uuid NOT NULL DEFAULT gen_random_uuid(),
  node_name text NOT NULL DEFAULT current_database(),
  epoch uuid NOT NULL DEFAULT gen_random_uuid(),
  hlc_floor bigint NOT NULL DEFAULT 0,
  max_clock_skew interval NOT NULL DEFAULT '5 minutes'
    CONSTRAINT node_max_clock_skew_check CHECK (max_clock_skew >= interval '0'),
  created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO cv_sync.node DEFAULT VALUES;

-- HLC logical counter. A sequence, not a column of node: no hot row, no lock per write. CACHE 1
-- (the default) keeps it increasing in call order across sessions, which the same-origin rule
-- relies on; MAXVALUE keeps the zero-padded text form sortable.
CREATE SEQUENCE cv_sync.hlc_logical MAXVALUE 9999999999;

-- HLC text '<physical ms, 15 digits>.<logical, 10 digits>.<node id>': text order is
-- (physical, logical, node) order, so LWW is a plain comparison and the node breaks ties.
CREATE FUNCTION cv_sync.hlc(p_floor bigint, p_node uuid) RETURNS text
  LANGUAGE sql VOLATILE
  RETURN pg_catalog.lpad(
      greatest(pg_catalog.floor(EXTRACT(EPOCH FROM pg_catalog.clock_timestamp()) * 1000)::bigint, p_floor + 1)::text,
      15, '0')
    || '.' || pg_catalog.lpad(pg_catalog.nextval('cv_sync.hlc_logical'::regclass)::text, 10, '0')
    || '.' || p_node::text;

-- The logical part orders two stamps of the same node by when they were taken, even if that
-- node's clock stepped back in between (its physical part cannot be trusted for that).
CREATE FUNCTION cv_sync.hlc_logical(p_hlc text) RETURNS bigint
  LANGUAGE sql IMMUTABLE STRICT
  RETURN pg_catalog.split_part(p_hlc, '.', 2)::bigint;

CREATE FUNCTION cv_sync.hlc_physical(p_hlc text) RETURNS bigint
  LANGUAGE sql IMMUTABLE STRICT
  RETURN pg_catalog.split_part(p_hlc, '.', 1)::bigint;

-- The latest timestamp this node accepts from a client or a peer: its clock plus max_clock_skew.
-- clock_timestamp(), not now(): the HLC stamps with it, and a long transaction's now() lags behind
-- stamps a peer took after it began.
CREATE FUNCTION cv_sync.clock_limit() RETURNS timestamptz
  LANGUAGE sql VOLATILE
  RETURN pg_catalog.clock_timestamp() + (SELECT n.max_clock_skew FROM cv_sync.node n);

-- CV009 when p_at, a timestamp from a client or a peer (p_what names it, without its value), is
-- past cv_sync.clock_limit(); p_hint says whose clock to check. The message holds only p_what and
-- numbers, so the sync engine may show it.
CREATE FUNCTION cv_sync.check_clock(p_at timestamptz, p_what text, p_hint text) RETURNS void
  LANGUAGE plpgsql VOLATILE
  SET search_path = ''
AS $$
DECLARE
  v_now timestamptz := pg_catalog.clock_timestamp();
  v_skew interval := (SELECT n.max_clock_skew FROM cv_sync.node n);
BEGIN
  IF p_at > v_now + v_skew THEN
    RAISE EXCEPTION '% is % ahead of this server''s clock (at most % s allowed); nothing was applied', p_what,
      CASE WHEN pg_catalog.isfinite(p_at) THEN pg_catalog.ceil(EXTRACT(EPOCH FROM p_at - v_now))::bigint || ' s'
        ELSE 'infinitely far' END,
      EXTRACT(EPOCH FROM v_skew)::bigint
      USING ERRCODE = 'CV009', HINT = p_hint;
  END IF;
END
$$;

-- The HLC a row had before sync tracked it (see the backfill below): its updated_at, logical 0.
CREATE FUNCTION cv_sync.synthetic_hlc(p_updated_at timestamptz, p_node uuid) RETURNS text
  LANGUAGE sql IMMUTABLE
  RETURN pg_catalog.lpad(pg_catalog.floor(EXTRACT(EPOCH FROM p_updated_at) * 1000)::text, 15, '0')
    || '.0000000000.' || p_node::text;

-- Append-only change log. txid: the writing transaction (pg_current_xact_id); the cursor is
-- (txid, seq) and readers stop below the xmin horizon (PROTOCOL.md "Cursor").
-- seq is an identity with CACHE 1, taken when the row is written: for one row its order is the
-- order in which the writes happened, whatever order their transactions got their ids in.
-- row_data: the full row after the change; for a delete the last row image.
-- received_from: the peer an applied entry came from (NULL = written here): a node never sends an
-- entry back to the node it came from, nor to its origin.
-- resolves: the conflict a reviewed resolution settles (cv_sync_conflict_resolve).
-- op 'rescope' (the cloud only): not a change but a row entering or leaving clinics' scope because
-- a row linking to it changed (see "Scope" below); it carries the row as it is, at its version.
-- scope / scope_before (the cloud only): the branches whose clinic servers hold the row after and
-- before this entry; a scoped pull sends an entry to the clinics in either (cv_sync.op_for).
-- author: who made the change, where it was made (cv_sync.current_author), carried unchanged to
-- every node it reaches; NULL for a change no signed-in person made (the owner, the backfill).
CREATE TABLE cv_sync.change_log (
  txid xid8 NOT NULL DEFAULT pg_current_xact_id(),
  seq bigint GENERATED ALWAYS AS IDENTITY,
  table_name text NOT NULL,
  row_id uuid NOT NULL,
  op text NOT NULL CONSTRAINT change_log_op_check CHECK (op IN ('upsert', 'delete', 'rescope')),
  row_data jsonb NOT NULL,
  version uuid NOT NULL,
  base_version uuid,
  origin uuid NOT NULL,
  hlc text NOT NULL,
  changed_columns text[],
  received_from uuid,
  resolves uuid,
  author jsonb,
  scope uuid[],
  scope_before uuid[],
  recorded_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (txid, seq)
);
-- A row's history: what this node changed since a base (conflicts), a tombstone's last image.
CREATE INDEX change_log_row_idx ON cv_sync.change_log (row_id, seq);

-- The last writer of every row this node has seen, deleted rows included (tombstones): what a
-- version check compares against, also after the row itself is gone. txid/seq: where that
-- change sits in the log (NULL for rows copied by an initial sync), so a tombstone is purged
-- only after every peer acknowledged it.
CREATE TABLE cv_sync.row_state (
  table_name text NOT NULL,
  row_id uuid NOT NULL,
  version uuid NOT NULL,
  hlc text NOT NULL,
  origin uuid NOT NULL,
  deleted boolean NOT NULL DEFAULT false,
  deleted_at timestamptz,
  txid xid8,
  seq bigint,
  PRIMARY KEY (table_name, row_id)
);

-- Per remote node. cursor: what this node has applied from the peer (saved in the apply
-- transaction). acked: what the peer has applied from this node (cv_sync_ack; purge waits for
-- it). catchup: the horizon an initial sync must replay the log up to; snapshot_progress: where
-- the paged copy stands, so a crash resumes instead of restarting.
CREATE TABLE cv_sync.peers (
  peer_id uuid PRIMARY KEY,
  peer_name text,
  epoch uuid,
  cursor_txid bigint NOT NULL DEFAULT 0,
  cursor_seq bigint NOT NULL DEFAULT 0,
  acked_txid bigint,
  acked_seq bigint,
  catchup_txid bigint,
  catchup_seq bigint,
  snapshot_progress jsonb,
  fingerprint jsonb,
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- Concurrent edits and how they were settled (PROTOCOL.md "Conflicts"). A NULL row is a delete.
-- id is derived from the two versions, so both nodes record the same conflict under the same id
-- and a resolution made on either side closes it on both.
CREATE TABLE cv_sync.conflicts (
  id uuid PRIMARY KEY,
  table_name text NOT NULL,
  row_id uuid NOT NULL,
  local_row jsonb,
  remote_row jsonb,
  local_version uuid,
  remote_version uuid,
  local_hlc text,
  remote_hlc text,
  local_origin uuid,
  remote_origin uuid,
  winner text NOT NULL CONSTRAINT conflicts_winner_check CHECK (winner IN ('local', 'remote', 'merged')),
  policy text NOT NULL,
  reason text NOT NULL,
  columns text[],
  status text NOT NULL DEFAULT 'open' CONSTRAINT conflicts_status_check CHECK (status IN ('open', 'resolved')),
  resolution jsonb,
  resolved_at timestamptz,
  resolved_by text,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX conflicts_status_created_at_idx ON cv_sync.conflicts (status, created_at);

-- ---------------------------------------------------------------------------------------------
-- Who may write "as sync". Replicated rows are written verbatim and not captured again (they
-- would echo back forever), so "this write is a sync apply" must be a fact nobody can forge: a
-- custom setting such as centrovision.sync_origin can be set by any session, and a function's
-- SET clause naming one (or session_replication_role) needs a superuser, which a hosted Supabase
-- project's migration user is not. The fact is a row in cv_sync.applying for the writing
-- transaction: only the owner's functions (cv_sync.begin_apply, called by the SECURITY DEFINER
-- apply functions) can write it, nobody else has any privilege on it, and it names the current
-- transaction, so it ends with it.
-- The row triggers look only at centrovision.sync_origin (set by begin_apply), so a replicated
-- row costs them nothing; a statement-level guard on every synced table refuses any statement
-- run with the setting outside a sync apply. A session that sets it itself (an app login, an API
-- role, the sync role, even the schema owner) therefore writes nothing at all, let alone an
-- uncaptured row. The table owner can always bypass triggers (ALTER TABLE … DISABLE TRIGGER): it
-- is the migration user, not a client.
CREATE TABLE cv_sync.applying (
  txid xid8 PRIMARY KEY,
  origin uuid NOT NULL
);

-- AFTER … FOR EACH STATEMENT, only when centrovision.sync_origin is set: once per statement of
-- an apply, never on an ordinary write.
CREATE FUNCTION cv_sync.guard() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = ''
AS $$
BEGIN
  IF NOT EXISTS (SELECT FROM cv_sync.applying a WHERE a.txid = pg_current_xact_id_if_assigned()) THEN
    RAISE EXCEPTION 'centrovision.sync_origin is reserved for the sync machinery; this write to % was refused',
      TG_TABLE_NAME
      USING ERRCODE = 'insufficient_privilege',
        HINT = 'reset it (RESET centrovision.sync_origin) and write again: only cv_sync_apply writes rows verbatim';
  END IF;
  RETURN NULL;
END
$$;

-- Marks the rest of this transaction, until cv_sync.end_apply(), as a sync apply from p_origin.
CREATE FUNCTION cv_sync.begin_apply(p_origin uuid) RETURNS void
  LANGUAGE plpgsql
  SET search_path = ''
AS $$
BEGIN
  INSERT INTO cv_sync.applying AS a (txid, origin) VALUES (pg_current_xact_id(), p_origin)
  ON CONFLICT (txid) DO UPDATE SET origin = excluded.origin;
  PERFORM set_config('centrovision.sync_origin', p_origin::text, true);
END
$$;

-- Writes the caller makes after the apply, in the same transaction, are local edits again.
CREATE FUNCTION cv_sync.end_apply() RETURNS void
  LANGUAGE plpgsql
  SET search_path = ''
AS $$
BEGIN
  DELETE FROM cv_sync.applying a WHERE a.txid = pg_current_xact_id();
  PERFORM set_config('centrovision.sync_origin', '', true);
END
$$;

-- The signed-in person behind this statement, as the change log records them: user (auth.uid()),
-- how they signed in, their session, the device and this node. NULL without a person: the owner,
-- the sync, a migration. Each tier gets its own body here, once, rather than asking which it is on
-- every captured row: on the clinic server the clinic session's `sign_in` (online or clinic), its
-- `sid` and the PC's own login as device; on the cloud the token's first authentication method
-- (e.g. password) and `session_id`, and no device (it sees only its gateway).
DO $author$
BEGIN
  IF to_regclass('cv_auth.signing_key') IS NOT NULL THEN
    CREATE FUNCTION cv_sync.current_author() RETURNS jsonb
      LANGUAGE plpgsql STABLE
      SET search_path = ''
    AS $fn$
    DECLARE
      v_claims jsonb := auth.jwt();
    BEGIN
      IF v_claims ->> 'sub' IS NULL THEN
        RETURN NULL;
      END IF;
      RETURN jsonb_strip_nulls(jsonb_build_object('user', v_claims ->> 'sub', 'sign_in', v_claims ->> 'sign_in',
        'session', v_claims ->> 'sid', 'device', session_user::text, 'node', (SELECT n.node_id FROM cv_sync.node n)));
    END
    $fn$;
  ELSE
    CREATE FUNCTION cv_sync.current_author() RETURNS jsonb
      LANGUAGE plpgsql STABLE
      SET search_path = ''
    AS $fn$
    DECLARE
      v_claims jsonb := auth.jwt();
    BEGIN
      IF v_claims ->> 'sub' IS NULL THEN
        RETURN NULL;
      END IF;
      RETURN jsonb_strip_nulls(jsonb_build_object('user', v_claims ->> 'sub',
        'sign_in', v_claims -> 'amr' -> 0 ->> 'method', 'session', v_claims ->> 'session_id',
        'node', (SELECT n.node_id FROM cv_sync.node n)));
    END
    $fn$;
  END IF;
END
$author$;

-- Capture: one log entry and one row_state upsert per written row, in one statement.
-- SECURITY DEFINER because it runs in app sessions, which must not be able to write the log
-- themselves. The sync-apply test lives in the trigger's WHEN clause, evaluated before this
-- function is entered (a replicated row does not even queue the event); cv_sync.guard makes
-- sure the setting it reads means a real apply.
-- Meta columns are left out of changed_columns: every edit changes them.

CREATE FUNCTION cv_sync.capture() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = ''
AS $$
DECLARE
  v_row jsonb;
  v_old jsonb;
  v_id uuid;
  v_version uuid;
  v_base uuid;
  v_changed text[];
BEGIN
  IF TG_OP = 'DELETE' THEN
    v_row := to_jsonb(OLD);
    v_id := OLD.id;
    v_version := gen_random_uuid();
    v_base := OLD.version;
  ELSE
    v_row := to_jsonb(NEW);
    v_id := NEW.id;
    v_version := NEW.version;
    v_base := NEW.base_version;
    IF TG_OP = 'UPDATE' THEN
      -- A changed id would leave the old row behind on every peer.
      IF NEW.id <> OLD.id THEN
        RAISE EXCEPTION 'the id of a synced row cannot change (%.% %)', TG_TABLE_SCHEMA, TG_TABLE_NAME, OLD.id
          USING ERRCODE = 'CV007', HINT = 'insert a new row and delete the old one';
      END IF;
      v_old := to_jsonb(OLD);
      v_base := OLD.version;
      SELECT coalesce(array_agg(n.key ORDER BY n.key), '{}') INTO v_changed
      FROM jsonb_each(v_row) n
      WHERE n.key NOT IN ('created_at', 'updated_at', 'version', 'base_version', 'created_by', 'updated_by')
        AND n.value IS DISTINCT FROM v_old -> n.key;
    END IF;
  END IF;

  WITH entry AS (
    INSERT INTO cv_sync.change_log (table_name, row_id, op, row_data, version, base_version, origin, hlc, changed_columns,
      author)
    SELECT TG_TABLE_NAME, v_id, CASE TG_OP WHEN 'DELETE' THEN 'delete' ELSE 'upsert' END, v_row, v_version, v_base,
      n.node_id, cv_sync.hlc(n.hlc_floor, n.node_id), v_changed, cv_sync.current_author()
    FROM cv_sync.node n
    RETURNING table_name, row_id, op, version, origin, hlc, txid, seq
  )
  INSERT INTO cv_sync.row_state AS s (table_name, row_id, version, hlc, origin, deleted, deleted_at, txid, seq)
  SELECT e.table_name, e.row_id, e.version, e.hlc, e.origin, e.op = 'delete', CASE WHEN e.op = 'delete' THEN now() END,
    e.txid, e.seq
  FROM entry e
  ON CONFLICT (table_name, row_id) DO UPDATE SET
    version = excluded.version, hlc = excluded.hlc, origin = excluded.origin, deleted = excluded.deleted,
    deleted_at = excluded.deleted_at, txid = excluded.txid, seq = excluded.seq;
  RETURN NULL;
END
$$;

-- Install capture and the guard on every synced table, fire cv_touch_row (0002) only outside a
-- sync apply, and give rows that already exist a row_state (this node as origin, updated_at as
-- HLC time) so the first sync can compare versions for them.
DO $install$
DECLARE
  v_table text;
  v_origin constant text := 'coalesce(pg_catalog.current_setting(''centrovision.sync_origin'', true), '''')';
BEGIN
  FOR v_table IN SELECT table_name FROM cv_sync.synced_tables ORDER BY position LOOP
    EXECUTE format('DROP TRIGGER cv_touch_row ON public.%I', v_table);
    EXECUTE format('CREATE TRIGGER cv_touch_row BEFORE INSERT OR UPDATE ON public.%I FOR EACH ROW '
      'WHEN (%s = '''') EXECUTE FUNCTION public.cv_touch_row()', v_table, v_origin);
    EXECUTE format('CREATE TRIGGER cv_sync_capture AFTER INSERT OR UPDATE OR DELETE ON public.%I FOR EACH ROW '
      'WHEN (%s = '''') EXECUTE FUNCTION cv_sync.capture()', v_table, v_origin);
    EXECUTE format('CREATE TRIGGER cv_sync_guard AFTER INSERT OR UPDATE OR DELETE ON public.%I FOR EACH STATEMENT '
      'WHEN (%s <> '''') EXECUTE FUNCTION cv_sync.guard()', v_table, v_origin);
    EXECUTE format(
      'INSERT INTO cv_sync.row_state (table_name, row_id, version, hlc, origin) '
      'SELECT %L, t.id, t.version, cv_sync.synthetic_hlc(t.updated_at, n.node_id), n.node_id '
      'FROM public.%I t, cv_sync.node n', v_table, v_table);
  END LOOP;
END
$install$;

-- ---------------------------------------------------------------------------------------------
-- Who drives the sync from the other side. On the cloud a clinic server is a **node credential**:
-- a Supabase Auth user the cloud's administrator registered here (cv_sync_register_node, with the
-- service key; `centrovision-sync node create` does both). Its token has role authenticated like
-- any user's, so row-level security gives it no row; only this list lets it call the sync
-- functions a clinic server needs, and only as the clinic server node it first synced as (its
-- node id is bound on first use): it cannot acknowledge, apply or reset in another clinic's name.
-- The owner, the service key and, on the clinic server, the sync role's logins are trusted by
-- their grants alone.
-- branch_ids: the clinic's scope, the branches whose rows its server holds (see "Scope" below);
-- NULL: every branch (an organisation with one clinic server, registered so on purpose).
CREATE TABLE cv_sync.clinic_nodes (
  user_id uuid PRIMARY KEY,
  name text NOT NULL CONSTRAINT clinic_nodes_name_key UNIQUE
    CONSTRAINT clinic_nodes_name_not_blank CHECK (name ~ '\S'),
  node_id uuid CONSTRAINT clinic_nodes_node_id_key UNIQUE,
  branch_ids uuid[] CONSTRAINT clinic_nodes_branch_ids_not_empty CHECK (cardinality(branch_ids) > 0),
  registered_at timestamptz NOT NULL DEFAULT now()
);

-- Whether the caller is a signed-in API user: on the cloud, a clinic's node credential (once
-- cv_sync.require_node let it through). The owner, the service key and the sync role are not.
CREATE FUNCTION cv_sync.called_by_node() RETURNS boolean
  LANGUAGE sql STABLE
  RETURN coalesce(pg_catalog.current_setting('role', true), 'none') = 'authenticated';

-- Refuses (42501) a signed-in API user that is not a registered node; with p_node, also a node
-- acting as another node than the one it is bound to (binding it on its first such call).
CREATE FUNCTION cv_sync.require_node(p_node uuid) RETURNS void
  LANGUAGE plpgsql
  SET search_path = ''
AS $$
DECLARE
  v_user uuid;
  v_bound uuid;
BEGIN
  IF NOT cv_sync.called_by_node() THEN
    RETURN;
  END IF;
  v_user := auth.uid();
  SELECT n.node_id INTO v_bound FROM cv_sync.clinic_nodes n WHERE n.user_id = v_user;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'only a clinic server''s node credential may call the sync functions'
      USING ERRCODE = 'insufficient_privilege',
        HINT = 'Create one for the clinic server with centrovision-sync node create.';
  END IF;
  IF p_node IS NULL OR v_bound = p_node THEN
    RETURN;
  END IF;
  IF v_bound IS NOT NULL THEN
    RAISE EXCEPTION 'this node credential belongs to another clinic server'
      USING ERRCODE = 'insufficient_privilege',
        HINT = 'Each clinic server needs its own: create one with centrovision-sync node create.';
  END IF;
  UPDATE cv_sync.clinic_nodes n SET node_id = p_node WHERE n.user_id = v_user;
END
$$;

-- Registers an Auth user as a clinic server's node credential for the clinic of p_branch_ids (NULL:
-- every branch; the cloud's administrator, with the service key). Registering it again under the same name and
-- branches changes nothing. p_replace gives a name already registered to a new user, keeping the
-- clinic server it is bound to and its branches (a lost or stolen password: the old user should
-- then be deleted): returns the user it replaced, else NULL. A clinic's branches do not change in
-- place: its server holds only their rows, and would miss the rows of a branch added later.
CREATE FUNCTION public.cv_sync_register_node(
  p_user_id uuid, p_name text, p_branch_ids uuid[], p_replace boolean DEFAULT false
) RETURNS uuid
  LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = ''
AS $$
DECLARE
  v_previous cv_sync.clinic_nodes;
  v_branches uuid[] := CASE WHEN p_branch_ids IS NOT NULL
    THEN ARRAY(SELECT DISTINCT b FROM unnest(p_branch_ids) b WHERE b IS NOT NULL ORDER BY b) END;
  v_unknown text;
BEGIN
  IF p_user_id IS NULL OR p_name IS NULL OR p_name !~ '\S' OR cardinality(v_branches) = 0 THEN
    RAISE EXCEPTION 'a node needs the id of its Auth user, a clinic name and the clinic''s branches (NULL: all)'
      USING ERRCODE = 'CV005';
  END IF;
  SELECT string_agg(b::text, ', ') INTO v_unknown
  FROM unnest(v_branches) b WHERE NOT EXISTS (SELECT FROM public.branches x WHERE x.id = b);
  IF v_unknown IS NOT NULL THEN
    RAISE EXCEPTION 'no branch %', v_unknown USING ERRCODE = 'CV005', HINT = 'Create the branch first, or check its id.';
  END IF;
  SELECT * INTO v_previous FROM cv_sync.clinic_nodes n WHERE n.name = p_name FOR UPDATE;
  IF FOUND AND v_previous.branch_ids IS DISTINCT FROM v_branches THEN
    RAISE EXCEPTION 'the clinic % holds branches % and cannot change them in place', p_name,
      coalesce(v_previous.branch_ids::text, 'all')
      USING ERRCODE = 'CV005',
        HINT = 'Register the clinic server anew under another name and re-sync it from the cloud.';
  END IF;
  IF v_previous.user_id = p_user_id THEN
    RETURN NULL;
  END IF;
  IF FOUND AND NOT coalesce(p_replace, false) THEN
    RAISE EXCEPTION 'the clinic name % is already registered to another node', p_name USING ERRCODE = 'CV005',
      HINT = 'Choose another name, or replace that clinic''s credential (p_replace).';
  END IF;
  IF EXISTS (SELECT FROM cv_sync.clinic_nodes n WHERE n.user_id = p_user_id) THEN
    RAISE EXCEPTION 'this user is already the node of another clinic' USING ERRCODE = 'CV005';
  END IF;
  IF NOT FOUND THEN
    INSERT INTO cv_sync.clinic_nodes (user_id, name, branch_ids) VALUES (p_user_id, p_name, v_branches);
  ELSE
    UPDATE cv_sync.clinic_nodes n SET user_id = p_user_id, registered_at = now() WHERE n.name = p_name;
  END IF;
  RETURN v_previous.user_id;
END
$$;

-- ---------------------------------------------------------------------------------------------
-- Scope (partial replication). On the cloud every row has a scope: the branches whose clinic
-- servers hold it. A clinic's node credential pulls only the entries of rows in its branches'
-- scope, copies only those rows in an initial sync, and may send changes only to rows in it; a
-- row leaving the scope is evicted from the clinic server (an 'evict' entry: removed there, not
-- deleted anywhere). What a clinic holds is what its staff need and nothing more:
--   branches                     all of them (a patient seen here may live at another branch;
--                                names and addresses, no patient data);
--   rooms, user_branches,        their branch;
--   encounters
--   appointments                 their branch and the branches of encounters following them;
--   patients                     their home branch and every branch with an appointment or an
--                                encounter of theirs ("patients seen there");
--   profiles                     the branches the person works at and those where they are the
--                                doctor of an appointment or encounter;
--   user_roles                   the branches their person works at;
--   exam_eye, diagnoses          their encounter's branch.
-- So every row a clinic holds finds its parents there too. A row's scope is kept in cv_sync.scopes
-- and moves with every change of a row linking to it: the link's entry in the log is followed by
-- a 'rescope' entry of the linked row (a patient's first appointment at a branch brings the patient
-- to that clinic, the last one's removal evicts them). The clinic servers themselves keep no scope:
-- they send everything they hold to the cloud and take only their own branches' rows from it.

-- The scope of rows every clinic holds (an id no branch has).
CREATE FUNCTION cv_sync.everywhere() RETURNS uuid
  LANGUAGE sql IMMUTABLE
  RETURN '00000000-0000-0000-0000-000000000000'::uuid;

-- A row's scope, from its image p_row and the rows that link to it now; sorted, no duplicates.
-- One query per table (or none), each on an index.
CREATE FUNCTION cv_sync.row_scope(p_table text, p_row jsonb) RETURNS uuid[]
  LANGUAGE plpgsql STABLE
  SET search_path = ''
AS $$
DECLARE
  v_id uuid := (p_row ->> 'id')::uuid;
  v_branch uuid := (p_row ->> 'branch_id')::uuid;
BEGIN
  CASE p_table
    WHEN 'branches' THEN
      RETURN ARRAY[cv_sync.everywhere()];
    WHEN 'rooms', 'user_branches', 'encounters' THEN
      RETURN ARRAY[v_branch];
    WHEN 'appointments' THEN
      RETURN ARRAY(SELECT v_branch UNION SELECT e.branch_id FROM public.encounters e WHERE e.appointment_id = v_id ORDER BY 1);
    WHEN 'patients' THEN
      RETURN ARRAY(SELECT v_branch
        UNION SELECT a.branch_id FROM public.appointments a WHERE a.patient_id = v_id
        UNION SELECT e.branch_id FROM public.encounters e WHERE e.patient_id = v_id ORDER BY 1);
    WHEN 'profiles' THEN
      RETURN ARRAY(SELECT ub.branch_id FROM public.user_branches ub WHERE ub.user_id = v_id
        UNION SELECT a.branch_id FROM public.appointments a WHERE a.doctor_id = v_id
        UNION SELECT e.branch_id FROM public.encounters e WHERE e.doctor_id = v_id ORDER BY 1);
    WHEN 'user_roles' THEN
      RETURN ARRAY(SELECT DISTINCT ub.branch_id FROM public.user_branches ub
        WHERE ub.user_id = (p_row ->> 'user_id')::uuid ORDER BY 1);
    ELSE
      -- exam_eye, diagnoses
      RETURN ARRAY(SELECT e.branch_id FROM public.encounters e WHERE e.id = (p_row ->> 'encounter_id')::uuid);
  END CASE;
END
$$;

-- Whether branch p_branch is still in the scope of a row that just lost one link bringing it
-- there: the rules of cv_sync.row_scope, asked for one branch, so the answer stops at the first
-- other link (a doctor's other appointment there) instead of reading all of them.
CREATE FUNCTION cv_sync.still_in_scope(p_table text, p_row_id uuid, p_branch uuid) RETURNS boolean
  LANGUAGE plpgsql STABLE
  SET search_path = ''
AS $$
BEGIN
  CASE p_table
    WHEN 'patients' THEN
      RETURN EXISTS (SELECT FROM public.patients p WHERE p.id = p_row_id AND p.branch_id = p_branch)
        OR EXISTS (SELECT FROM public.appointments a WHERE a.patient_id = p_row_id AND a.branch_id = p_branch)
        OR EXISTS (SELECT FROM public.encounters e WHERE e.patient_id = p_row_id AND e.branch_id = p_branch);
    WHEN 'profiles' THEN
      RETURN EXISTS (SELECT FROM public.user_branches ub WHERE ub.user_id = p_row_id AND ub.branch_id = p_branch)
        OR EXISTS (SELECT FROM public.appointments a WHERE a.doctor_id = p_row_id AND a.branch_id = p_branch)
        OR EXISTS (SELECT FROM public.encounters e WHERE e.doctor_id = p_row_id AND e.branch_id = p_branch);
    WHEN 'appointments' THEN
      RETURN EXISTS (SELECT FROM public.appointments a WHERE a.id = p_row_id AND a.branch_id = p_branch)
        OR EXISTS (SELECT FROM public.encounters e WHERE e.appointment_id = p_row_id AND e.branch_id = p_branch);
    WHEN 'user_roles' THEN
      RETURN EXISTS (SELECT FROM public.user_roles r JOIN public.user_branches ub ON ub.user_id = r.user_id
        WHERE r.id = p_row_id AND ub.branch_id = p_branch);
    ELSE
      RETURN false;
  END CASE;
END
$$;

-- The rows whose scope follows this row's links, as [table, id, branch] (the branch this row
-- brings them): an appointment's patient and doctor, an encounter's patient, doctor and
-- appointment, a membership's person and their roles.
CREATE FUNCTION cv_sync.scope_links(p_table text, p_row jsonb) RETURNS jsonb
  LANGUAGE sql STABLE
  SET search_path = ''
  RETURN CASE
    WHEN p_table IN ('appointments', 'encounters') THEN (
      SELECT coalesce(jsonb_agg(jsonb_build_array(l.table_name, l.row_id, p_row -> 'branch_id')), '[]')
      FROM (VALUES ('patients', p_row -> 'patient_id'), ('profiles', p_row -> 'doctor_id'),
        ('appointments', p_row -> 'appointment_id')) l(table_name, row_id)
      WHERE jsonb_typeof(l.row_id) = 'string')
    WHEN p_table = 'user_branches' THEN jsonb_build_array(jsonb_build_array('profiles', p_row -> 'user_id', p_row -> 'branch_id'))
      || coalesce((SELECT jsonb_agg(jsonb_build_array('user_roles', r.id, p_row -> 'branch_id')) FROM public.user_roles r
        WHERE r.user_id = (p_row ->> 'user_id')::uuid), '[]')
    ELSE '[]' END;

-- The scope of every row the cloud has seen, and its links when it was last written.
CREATE TABLE cv_sync.scopes (
  table_name text NOT NULL,
  row_id uuid NOT NULL,
  scope uuid[] NOT NULL,
  links jsonb NOT NULL DEFAULT '[]',
  PRIMARY KEY (table_name, row_id)
);

-- The branches a clinic's node credential holds (with everywhere()); NULL for a node of every
-- branch and every other caller (the owner, the service key, the sync role), which hold the whole
-- database. A signed-in user who is not a node holds nothing (cv_sync.require_node refuses it).
CREATE FUNCTION cv_sync.node_scope() RETURNS uuid[]
  LANGUAGE plpgsql STABLE
  SET search_path = ''
AS $$
DECLARE
  v_node cv_sync.clinic_nodes;
BEGIN
  IF NOT cv_sync.called_by_node() THEN
    RETURN NULL;
  END IF;
  SELECT * INTO v_node FROM cv_sync.clinic_nodes n WHERE n.user_id = auth.uid();
  RETURN CASE WHEN NOT FOUND THEN '{}' WHEN v_node.branch_ids IS NOT NULL THEN v_node.branch_ids || cv_sync.everywhere() END;
END
$$;

-- What a log entry becomes for a consumer holding p_held (NULL: everything): the op to send, or
-- NULL to leave it out. A row moving out of the consumer's scope is evicted there; a 'rescope'
-- entry matters only to the clinics it moves the row into (an upsert) or out of (an evict).
CREATE FUNCTION cv_sync.op_for(p_op text, p_scope uuid[], p_before uuid[], p_held uuid[]) RETURNS text
  LANGUAGE sql IMMUTABLE
  RETURN CASE
    WHEN p_held IS NULL THEN nullif(p_op, 'rescope')
    WHEN coalesce(p_scope && p_held, false) THEN
      CASE WHEN p_op <> 'rescope' OR NOT coalesce(p_before && p_held, false) THEN replace(p_op, 'rescope', 'upsert') END
    WHEN coalesce(p_before && p_held, false) AND p_op <> 'delete' THEN 'evict'
  END;

-- Re-reads the scope of one row after a row linking to it changed; when it moved, keeps the new
-- scope and records the move as a 'rescope' entry in the log (p_log; not for an initial-sync
-- copy, which is not logged). A row that is gone (deleted in this transaction) is left to its
-- own delete.
CREATE FUNCTION cv_sync.rescope(p_table text, p_row_id uuid, p_log boolean) RETURNS void
  LANGUAGE plpgsql
  SET search_path = ''
AS $$
DECLARE
  v_row jsonb;
  v_scope uuid[];
  v_held uuid[];
BEGIN
  EXECUTE format('SELECT to_jsonb(x) FROM public.%I x WHERE x.id = $1', p_table) INTO v_row USING p_row_id;
  IF v_row IS NULL THEN
    RETURN;
  END IF;
  v_scope := cv_sync.row_scope(p_table, v_row);
  SELECT s.scope INTO v_held FROM cv_sync.scopes s WHERE s.table_name = p_table AND s.row_id = p_row_id;
  IF v_held = v_scope THEN
    RETURN;
  END IF;
  INSERT INTO cv_sync.scopes AS s (table_name, row_id, scope, links)
  VALUES (p_table, p_row_id, v_scope, cv_sync.scope_links(p_table, v_row))
  ON CONFLICT (table_name, row_id) DO UPDATE SET scope = excluded.scope;
  IF p_log THEN
    INSERT INTO cv_sync.change_log (table_name, row_id, op, row_data, version, base_version, origin, hlc, changed_columns,
      scope, scope_before)
    SELECT p_table, p_row_id, 'rescope', v_row, (v_row ->> 'version')::uuid, (v_row ->> 'version')::uuid,
      coalesce(s.origin, n.node_id), coalesce(s.hlc, cv_sync.synthetic_hlc((v_row ->> 'updated_at')::timestamptz, n.node_id)),
      '{}', v_scope, v_held
    FROM cv_sync.node n LEFT JOIN cv_sync.row_state s ON s.table_name = p_table AND s.row_id = p_row_id;
  END IF;
END
$$;

-- The exams and diagnoses of encounters that changed branch follow them.
CREATE FUNCTION cv_sync.rescope_findings(p_encounters uuid[], p_log boolean) RETURNS void
  LANGUAGE plpgsql
  SET search_path = ''
AS $$
BEGIN
  PERFORM cv_sync.rescope(f.table_name, f.id, p_log) FROM (
    SELECT 'exam_eye' AS table_name, x.id FROM public.exam_eye x WHERE x.encounter_id = ANY (p_encounters)
    UNION ALL SELECT 'diagnoses', d.id FROM public.diagnoses d WHERE d.encounter_id = ANY (p_encounters)) f;
END
$$;

-- After a row's links went from p_old to p_new: re-reads the scope of each linked row that may
-- have gained a branch (a new link whose branch its kept scope lacks) or lost one (a link gone,
-- and no other link brings it that branch). A new appointment of a patient already seen at its
-- branch, or a cancelled one of a doctor who has others there, costs one lookup.
CREATE FUNCTION cv_sync.follow_links(p_new jsonb, p_old jsonb, p_log boolean) RETURNS void
  LANGUAGE plpgsql
  SET search_path = ''
AS $$
DECLARE
  v_link record;
BEGIN
  FOR v_link IN
    SELECT DISTINCT l.table_name, l.row_id FROM (
      SELECT n ->> 0 AS table_name, (n ->> 1)::uuid AS row_id FROM jsonb_array_elements(p_new) n
      WHERE NOT EXISTS (SELECT FROM cv_sync.scopes s
        WHERE s.table_name = n ->> 0 AND s.row_id = (n ->> 1)::uuid AND (n ->> 2)::uuid = ANY (s.scope))
      UNION ALL
      SELECT o ->> 0, (o ->> 1)::uuid FROM jsonb_array_elements(p_old) o
      WHERE NOT p_new @> jsonb_build_array(o) AND NOT cv_sync.still_in_scope(o ->> 0, (o ->> 1)::uuid, (o ->> 2)::uuid)
    ) l
  LOOP
    PERFORM cv_sync.rescope(v_link.table_name, v_link.row_id, p_log);
  END LOOP;
END
$$;

-- Keeps a row's scope for a captured write (BEFORE INSERT on the cloud's log, for entries that
-- come without a scope: every other writer of the log sets it, cv_sync.record_applied set-based):
-- sets the entry's scope and scope_before, then re-reads the scope of the rows it links to,
-- before and after (a moved appointment leaves one patient's branch and joins another's), and of
-- an encounter's exam and diagnoses when the encounter changed branch.
CREATE FUNCTION cv_sync.track_scope() RETURNS trigger
  LANGUAGE plpgsql
  SET search_path = ''
AS $$
DECLARE
  v_before cv_sync.scopes;
  v_links jsonb;
  v_linking boolean;
BEGIN
  SELECT * INTO v_before FROM cv_sync.scopes s WHERE s.table_name = NEW.table_name AND s.row_id = NEW.row_id;
  NEW.scope_before := v_before.scope;
  v_linking := NEW.table_name IN ('appointments', 'encounters', 'user_branches');
  IF NEW.op = 'delete' THEN
    NEW.scope := coalesce(v_before.scope, cv_sync.row_scope(NEW.table_name, NEW.row_data));
    DELETE FROM cv_sync.scopes s WHERE s.table_name = NEW.table_name AND s.row_id = NEW.row_id;
    v_links := '[]';
  ELSE
    NEW.scope := cv_sync.row_scope(NEW.table_name, NEW.row_data);
    v_links := CASE WHEN v_linking THEN cv_sync.scope_links(NEW.table_name, NEW.row_data) ELSE '[]' END;
    INSERT INTO cv_sync.scopes AS s (table_name, row_id, scope, links) VALUES (NEW.table_name, NEW.row_id, NEW.scope, v_links)
    ON CONFLICT (table_name, row_id) DO UPDATE SET scope = excluded.scope, links = excluded.links;
  END IF;
  IF v_linking THEN
    PERFORM cv_sync.follow_links(v_links,
      coalesce(v_before.links, CASE WHEN NEW.op = 'delete' THEN cv_sync.scope_links(NEW.table_name, NEW.row_data) END, '[]'),
      true);
  END IF;
  IF NEW.table_name = 'encounters' AND v_before.scope IS DISTINCT FROM NEW.scope THEN
    PERFORM cv_sync.rescope_findings(ARRAY[NEW.row_id], true);
  END IF;
  RETURN NEW;
END
$$;

-- On the cloud (no clinic signing key, 0003): track scopes, starting with the rows already there.
DO $scope$
DECLARE
  v_table text;
BEGIN
  IF to_regclass('cv_auth.signing_key') IS NOT NULL THEN
    RETURN;
  END IF;
  CREATE TRIGGER cv_sync_track_scope BEFORE INSERT ON cv_sync.change_log
    FOR EACH ROW WHEN (NEW.scope IS NULL) EXECUTE FUNCTION cv_sync.track_scope();
  FOR v_table IN SELECT table_name FROM cv_sync.synced_tables ORDER BY position LOOP
    EXECUTE format('INSERT INTO cv_sync.scopes (table_name, row_id, scope, links) '
      'SELECT %1$L, x.id, cv_sync.row_scope(%1$L, to_jsonb(x)), cv_sync.scope_links(%1$L, to_jsonb(x)) FROM public.%1$I x',
      v_table);
  END LOOP;
END
$scope$;

-- ---------------------------------------------------------------------------------------------
-- Permissions, run at the end of every sync migration for the functions it adds.
-- PUBLIC loses EXECUTE on every cv_sync helper and public.cv_sync_* function; centrovision_sync and (on Supabase) service_role get the RPC functions, and a node credential (authenticated, checked inside) those a clinic server calls. Supabase's
-- default privileges hand every new function in public to anon and authenticated: revoked
-- explicitly, so a user's token cannot read or write rows past its row-level security through
-- these SECURITY DEFINER functions.
-- Nobody gets anything in schema cv_sync itself, centrovision_sync included: every read and write
-- goes through the functions (monitoring too: cv_sync_node, cv_sync_pending, the conflict list).
-- A direct INSERT into the log would be a forged change; a direct read, every row of every table.
CREATE PROCEDURE cv_sync.grant_rpc()
  LANGUAGE plpgsql
  SET search_path = ''
AS $$
DECLARE
  v_function regprocedure;
  v_role text;
BEGIN
  EXECUTE 'REVOKE ALL ON ALL FUNCTIONS IN SCHEMA cv_sync FROM PUBLIC';
  EXECUTE 'REVOKE ALL ON ALL PROCEDURES IN SCHEMA cv_sync FROM PUBLIC';
  FOR v_function IN
    SELECT p.oid::regprocedure FROM pg_proc p
    WHERE p.pronamespace = 'public'::regnamespace AND p.proname LIKE 'cv\_sync\_%'
  LOOP
    EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', v_function);
    -- Registering nodes is the cloud administrator's (the service key's), no clinic daemon's.
    IF v_function::text !~ '^(public\.)?cv_sync_register_node\(' THEN
      EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO centrovision_sync', v_function);
    END IF;
    FOR v_role IN SELECT r.rolname FROM pg_roles r WHERE r.rolname IN ('anon', 'authenticated') LOOP
      EXECUTE format('REVOKE ALL ON FUNCTION %s FROM %I', v_function, v_role);
    END LOOP;
    IF EXISTS (SELECT FROM pg_roles r WHERE r.rolname = 'service_role') THEN
      EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO service_role', v_function);
      -- On the cloud (no clinic signing key, 0003), a clinic server's node credential
      -- (cv_sync.require_node checks it inside): what the daemon calls there, the purge included
      -- (within the floor cv_sync_purge sets for it). Not the cloud's own administration (init,
      -- conflicts, registering nodes): the service key's.
      IF to_regclass('cv_auth.signing_key') IS NULL
        AND v_function::text ~ '^(public\.)?cv_sync_(node|pull|cursor|ack|pending|snapshot|apply|apply_snapshot|reset_peer|purge)\(' THEN
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO authenticated', v_function);
      END IF;
    END IF;
  END LOOP;
END
$$;

CALL cv_sync.grant_rpc();

-- What `centrovision-sync cloud migrate` records: the project counts as having sql/0005_sync.sql.
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
insert into cv_meta.schema_migrations (name, checksum) values ('0005_sync.sql', '01e507334f4a99e9f0928d8323a223d44f6a0bd69f1992a52dff4d59e5533683') on conflict (name) do nothing;
