-- Generated from sql/0012_audit.sql by `npm run supabase:migrations`: do not edit (edit sql/0012_audit.sql and run that again).
-- 0012 The audit trail (bitácora, NOM-024-SSA3; HIPAA §164.312(b)): on every node, an append-only
-- record of who did what to which row, and who opened which patient's record, when, where and how
-- they were signed in.
--
--   events      one row per event made on this node: every insert, update and delete of a synced
--               table by this node (from its change log, with the change's author) and every
--               opening of a patient's record (cv_audit_record_opened). Received changes are not
--               events here: their own node recorded them.
--   sealing     cv_audit_seal() chains this node's events in commit order: each gets the next
--               position and hash = sha256(previous hash || the event's canonical text). Writers
--               never wait for one another: an event is written unsealed with its transaction,
--               and the seal, run by the sync daemon every cycle, takes only committed events
--               (below the oldest open transaction), so the order it fixes never changes.
--   verify      cv_audit_verify() recomputes the chain: an event changed after sealing, or one
--               taken out, breaks it at that position.
--   the cloud   receives each clinic server's sealed events from its daemon (cv_audit_receive) only
--               as the continuation of the chain it holds, so the trail outlives a lost server.
--   nobody      edits or deletes an event, the app roles and the sync role included: they hold no
--               privilege on the table, and a trigger refuses an UPDATE that is not the seal and a
--               DELETE of an event younger than the retention (at least 5 years; the change log's
--               purge never touches the trail). Only the owner could drop that trigger, and then
--               the chain shows what it did.

CREATE SCHEMA cv_audit;
REVOKE ALL ON SCHEMA cv_audit FROM PUBLIC;

CREATE TABLE cv_audit.settings (
  singleton boolean PRIMARY KEY DEFAULT true CONSTRAINT settings_singleton CHECK (singleton),
  retention interval NOT NULL DEFAULT interval '6 years'
    CONSTRAINT settings_retention_check CHECK (retention >= interval '5 years')
);
INSERT INTO cv_audit.settings DEFAULT VALUES;

CREATE TABLE cv_audit.events (
  event_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  node_id uuid NOT NULL,
  txid xid8 NOT NULL DEFAULT pg_current_xact_id(),
  written bigint GENERATED ALWAYS AS IDENTITY,
  at timestamptz NOT NULL DEFAULT clock_timestamp(),
  author jsonb,
  action text NOT NULL CONSTRAINT events_action_check CHECK (action IN ('insert', 'update', 'delete', 'open')),
  table_name text NOT NULL,
  row_id uuid NOT NULL,
  patient_id uuid,
  version uuid,
  changed_columns text[],
  -- Set once, by the seal.
  position bigint,
  hash bytea,
  CONSTRAINT events_node_position_key UNIQUE (node_id, position)
);
CREATE INDEX events_unsealed_idx ON cv_audit.events (txid, written) WHERE position IS NULL;
CREATE INDEX events_patient_idx ON cv_audit.events (patient_id, at) WHERE patient_id IS NOT NULL;
CREATE INDEX events_user_idx ON cv_audit.events ((author ->> 'user'), at);
CREATE INDEX events_at_idx ON cv_audit.events (at);

-- Where this node's chain stands.
CREATE TABLE cv_audit.chain (
  node_id uuid PRIMARY KEY,
  position bigint NOT NULL,
  hash bytea NOT NULL
);

-- The text an event's hash covers: every field but the chain's own, in a fixed order; the time as
-- epoch seconds, so no session's time zone changes the text.
CREATE FUNCTION cv_audit.canonical(e cv_audit.events) RETURNS text
  LANGUAGE sql IMMUTABLE
  RETURN pg_catalog.jsonb_build_array(e.event_id, e.node_id, e.position, EXTRACT(EPOCH FROM e.at), e.author,
    e.action, e.table_name, e.row_id, e.patient_id, e.version, e.changed_columns)::text;

CREATE FUNCTION cv_audit.link(p_previous bytea, e cv_audit.events) RETURNS bytea
  LANGUAGE sql IMMUTABLE
  RETURN pg_catalog.sha256(coalesce(p_previous, '\x') || pg_catalog.convert_to(cv_audit.canonical(e), 'UTF8'));

-- The patient an event is about: the row itself for patients, else the row's patient_id (the
-- tables that have one), else the patient of its encounter.
CREATE FUNCTION cv_audit.patient_of(p_table text, p_row jsonb) RETURNS uuid
  LANGUAGE plpgsql STABLE
  SET search_path = ''
AS $$
BEGIN
  IF p_table = 'patients' THEN
    RETURN (p_row ->> 'id')::uuid;
  ELSIF p_row ? 'patient_id' THEN
    RETURN (p_row ->> 'patient_id')::uuid;
  ELSIF p_row ? 'encounter_id' THEN
    RETURN (SELECT e.patient_id FROM public.encounters e WHERE e.id = (p_row ->> 'encounter_id')::uuid);
  END IF;
  RETURN NULL;
END
$$;

-- Every entry this node's change log gets for a change made here (received_from NULL) is an event;
-- a 'rescope' entry (0005) is none: nobody changed the row.
CREATE FUNCTION cv_audit.record_change() RETURNS trigger
  LANGUAGE plpgsql
  SET search_path = ''
AS $$
BEGIN
  INSERT INTO cv_audit.events (node_id, author, action, table_name, row_id, patient_id, version, changed_columns)
  VALUES (NEW.origin, NEW.author,
    CASE WHEN NEW.op = 'delete' THEN 'delete' WHEN NEW.base_version IS NULL THEN 'insert' ELSE 'update' END,
    NEW.table_name, NEW.row_id, cv_audit.patient_of(NEW.table_name, NEW.row_data), NEW.version, NEW.changed_columns);
  RETURN NULL;
END
$$;
CREATE TRIGGER cv_audit_record_change AFTER INSERT ON cv_sync.change_log
  FOR EACH ROW WHEN (NEW.received_from IS NULL AND NEW.op <> 'rescope')
  EXECUTE FUNCTION cv_audit.record_change();

-- Nobody edits or removes an event: the seal only fills in its position and hash once, and an
-- event leaves only when it is older than the retention.
CREATE FUNCTION cv_audit.guard() RETURNS trigger
  LANGUAGE plpgsql
  SET search_path = ''
AS $$
BEGIN
  IF TG_OP = 'TRUNCATE' THEN
    RAISE EXCEPTION 'the audit trail cannot be emptied' USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF TG_OP = 'DELETE' THEN
    IF OLD.at >= now() - (SELECT s.retention FROM cv_audit.settings s) THEN
      RAISE EXCEPTION 'the audit trail keeps every event for its retention; this one is from %', OLD.at::date
        USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN OLD;
  END IF;
  IF OLD.position IS NOT NULL
    OR (to_jsonb(NEW) - ARRAY['position', 'hash']) IS DISTINCT FROM (to_jsonb(OLD) - ARRAY['position', 'hash'])
  THEN
    RAISE EXCEPTION 'an audit event cannot be changed' USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER cv_audit_guard BEFORE UPDATE OR DELETE ON cv_audit.events
  FOR EACH ROW EXECUTE FUNCTION cv_audit.guard();
CREATE TRIGGER cv_audit_guard_truncate BEFORE TRUNCATE ON cv_audit.events
  FOR EACH STATEMENT EXECUTE FUNCTION cv_audit.guard();

-- A signed-in person opened a patient's record: an event, only for a patient they see (the same
-- rule as the patients policy, 0004). p_opened_at: when, for an opening the PC held while no
-- server answered (NULL: now); never later than this server's clock plus the allowed skew (CV009).
-- Returns the event's id.
CREATE FUNCTION public.cv_audit_record_opened(p_patient_id uuid, p_opened_at timestamptz DEFAULT NULL) RETURNS uuid
  LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = ''
AS $$
DECLARE
  v_event uuid;
BEGIN
  IF auth.uid() IS NULL THEN
    RAISE EXCEPTION 'only a signed-in person opens a record' USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF p_patient_id IS NULL OR NOT public.cv_patient_visible(p_patient_id) THEN
    RAISE EXCEPTION 'no such patient for this person' USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF p_opened_at IS NOT NULL THEN
    PERFORM cv_sync.check_clock(p_opened_at, 'the time this PC opened the record',
      'check this PC''s date and time (NTP); the opening stays queued on the PC until this server''s clock has caught up with it');
  END IF;
  INSERT INTO cv_audit.events (node_id, at, author, action, table_name, row_id, patient_id)
  SELECT n.node_id, coalesce(p_opened_at, clock_timestamp()), cv_sync.current_author(), 'open', 'patients',
    p_patient_id, p_patient_id
  FROM cv_sync.node n
  RETURNING event_id INTO v_event;
  RETURN v_event;
END
$$;

-- Chains this node's committed, unsealed events in commit order (at most p_limit); returns how
-- many it sealed. Only one seal runs at a time (the chain row is locked).
CREATE FUNCTION public.cv_audit_seal(p_limit integer DEFAULT 10000) RETURNS integer
  LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = ''
AS $$
DECLARE
  v_node uuid := (SELECT n.node_id FROM cv_sync.node n);
  v_chain cv_audit.chain;
  v_event cv_audit.events;
  v_sealed integer := 0;
BEGIN
  PERFORM cv_sync.require_node(NULL);
  INSERT INTO cv_audit.chain (node_id, position, hash) VALUES (v_node, 0, '\x') ON CONFLICT (node_id) DO NOTHING;
  -- Another seal at work: it seals these too.
  SELECT * INTO v_chain FROM cv_audit.chain c WHERE c.node_id = v_node FOR UPDATE SKIP LOCKED;
  IF NOT FOUND THEN
    RETURN 0;
  END IF;
  FOR v_event IN
    SELECT * FROM cv_audit.events e
    WHERE e.position IS NULL AND e.node_id = v_node AND e.txid < cv_sync.horizon()::text::xid8
    ORDER BY e.txid, e.written
    LIMIT greatest(coalesce(p_limit, 10000), 1)
  LOOP
    v_event.position := v_chain.position + 1;
    v_event.hash := cv_audit.link(v_chain.hash, v_event);
    UPDATE cv_audit.events e SET position = v_event.position, hash = v_event.hash
    WHERE e.event_id = v_event.event_id;
    v_chain.position := v_event.position;
    v_chain.hash := v_event.hash;
    v_sealed := v_sealed + 1;
  END LOOP;
  UPDATE cv_audit.chain c SET position = v_chain.position, hash = v_chain.hash WHERE c.node_id = v_node;
  RETURN v_sealed;
END
$$;

-- Recomputes a node's chain (this node's, or one received from p_node) from its oldest kept event:
-- {events, sealed, unsealed, ok, broken_at (the first position whose hash does not follow, or that
-- is missing), head}.
CREATE FUNCTION public.cv_audit_verify(p_node uuid DEFAULT NULL) RETURNS jsonb
  LANGUAGE plpgsql STABLE SECURITY DEFINER
  SET search_path = ''
AS $$
DECLARE
  v_node uuid := coalesce(p_node, (SELECT n.node_id FROM cv_sync.node n));
  v_event cv_audit.events;
  v_previous bytea;
  v_expected bigint;
  v_sealed bigint := 0;
  v_broken bigint;
  v_head cv_audit.chain;
BEGIN
  FOR v_event IN
    SELECT * FROM cv_audit.events e WHERE e.node_id = v_node AND e.position IS NOT NULL ORDER BY e.position
  LOOP
    IF v_expected IS NULL THEN
      -- The oldest kept event: events before it left with the retention; its own hash is trusted
      -- as the start, the rest must follow from it.
      v_previous := v_event.hash;
      v_expected := v_event.position + 1;
      v_sealed := 1;
      CONTINUE;
    END IF;
    IF v_event.position <> v_expected OR cv_audit.link(v_previous, v_event) IS DISTINCT FROM v_event.hash THEN
      v_broken := v_expected;
      EXIT;
    END IF;
    v_previous := v_event.hash;
    v_expected := v_event.position + 1;
    v_sealed := v_sealed + 1;
  END LOOP;
  -- This node's own chain also ends where its seal says: an event removed at the end shows.
  SELECT * INTO v_head FROM cv_audit.chain c WHERE c.node_id = v_node;
  IF v_broken IS NULL AND v_head.position IS NOT NULL AND v_head.position > 0
    AND (v_expected IS NULL OR v_head.position <> v_expected - 1 OR v_head.hash IS DISTINCT FROM v_previous)
  THEN
    v_broken := coalesce(v_expected, 1);
  END IF;
  RETURN jsonb_build_object(
    'events', (SELECT count(*) FROM cv_audit.events e WHERE e.node_id = v_node),
    'sealed', v_sealed,
    'unsealed', (SELECT count(*) FROM cv_audit.events e WHERE e.node_id = v_node AND e.position IS NULL),
    'ok', v_broken IS NULL,
    'broken_at', v_broken,
    'head', coalesce(v_head.position, v_expected - 1, 0));
END
$$;

-- Shipping a clinic server's trail to the cloud, so it outlives the clinic server. The daemon asks
-- the cloud how far it holds the clinic's chain, reads the sealed events after that here, and hands
-- them to the cloud, which takes them only as the continuation of what it holds.

-- The highest position of p_node's chain this node holds (0: none).
CREATE FUNCTION public.cv_audit_head(p_node uuid) RETURNS bigint
  LANGUAGE plpgsql STABLE SECURITY DEFINER
  SET search_path = ''
AS $$
BEGIN
  PERFORM cv_sync.require_node(NULL);
  RETURN coalesce((SELECT max(e.position) FROM cv_audit.events e WHERE e.node_id = p_node), 0);
END
$$;

-- This node's own sealed events after position p_after, at most p_limit, in chain order.
CREATE FUNCTION public.cv_audit_sealed_after(p_after bigint, p_limit integer DEFAULT 1000) RETURNS jsonb
  LANGUAGE sql STABLE SECURITY DEFINER
  SET search_path = ''
  RETURN (
    SELECT coalesce(jsonb_agg(to_jsonb(e) - ARRAY['txid', 'written'] ORDER BY e.position), '[]')
    FROM (
      SELECT * FROM cv_audit.events x
      WHERE x.node_id = (SELECT n.node_id FROM cv_sync.node n) AND x.position > coalesce(p_after, 0)
      ORDER BY x.position
      LIMIT greatest(coalesce(p_limit, 1000), 1)
    ) e
  );

-- Takes a node's sealed events as the continuation of its chain held here: all of one node (the
-- caller's own, for a node credential), starting right after the position held, each hash following
-- from the one before. Anything else is refused whole (CV005): a gap, an edited event, another
-- node's. Returns how many it took; events already held are skipped.
CREATE FUNCTION public.cv_audit_receive(p_events jsonb) RETURNS integer
  LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = ''
AS $$
DECLARE
  v_events cv_audit.events[];
  v_event cv_audit.events;
  v_node uuid;
  v_previous bytea;
  v_position bigint;
  v_taken integer := 0;
BEGIN
  IF jsonb_typeof(p_events) IS DISTINCT FROM 'array' THEN
    RAISE EXCEPTION 'p_events must be a JSON array of sealed audit events' USING ERRCODE = 'CV005';
  END IF;
  BEGIN
    v_events := ARRAY(SELECT jsonb_populate_record(NULL::cv_audit.events, e) FROM jsonb_array_elements(p_events) e);
  EXCEPTION WHEN invalid_text_representation OR invalid_parameter_value OR datatype_mismatch THEN
    RAISE EXCEPTION 'p_events holds a malformed audit event: %', SQLERRM USING ERRCODE = 'CV005';
  END;
  IF cardinality(v_events) = 0 THEN
    RETURN 0;
  END IF;
  v_node := (v_events[1]).node_id;
  IF v_node IS NULL OR v_node = (SELECT n.node_id FROM cv_sync.node n)
    OR EXISTS (SELECT FROM unnest(v_events) e WHERE e.node_id IS DISTINCT FROM v_node OR e.position IS NULL
      OR e.hash IS NULL OR e.event_id IS NULL OR e.at IS NULL OR e.action IS NULL)
  THEN
    RAISE EXCEPTION 'p_events must be sealed events of one other node' USING ERRCODE = 'CV005';
  END IF;
  PERFORM cv_sync.require_node(v_node);
  -- One receiver per node's chain at a time.
  PERFORM pg_advisory_xact_lock(hashtextextended('cv_audit ' || v_node::text, 0));
  SELECT e.position, e.hash INTO v_position, v_previous
  FROM cv_audit.events e WHERE e.node_id = v_node ORDER BY e.position DESC NULLS LAST LIMIT 1;
  v_position := coalesce(v_position, 0);
  FOR v_event IN SELECT * FROM unnest(v_events) e ORDER BY e.position LOOP
    IF v_event.position <= v_position THEN
      CONTINUE;
    END IF;
    IF v_event.position <> v_position + 1 THEN
      RAISE EXCEPTION 'the audit events of node % skip from position % to %; nothing was taken', v_node,
        v_position, v_event.position USING ERRCODE = 'CV005';
    END IF;
    IF v_previous IS NOT NULL AND cv_audit.link(v_previous, v_event) IS DISTINCT FROM v_event.hash THEN
      RAISE EXCEPTION 'the audit event at position % of node % does not follow its chain; nothing was taken',
        v_event.position, v_node USING ERRCODE = 'CV005';
    END IF;
    INSERT INTO cv_audit.events (event_id, node_id, at, author, action, table_name, row_id, patient_id, version,
      changed_columns, position, hash)
    VALUES (v_event.event_id, v_event.node_id, v_event.at, v_event.author, v_event.action, v_event.table_name,
      v_event.row_id, v_event.patient_id, v_event.version, v_event.changed_columns, v_event.position, v_event.hash);
    v_previous := v_event.hash;
    v_position := v_event.position;
    v_taken := v_taken + 1;
  END LOOP;
  RETURN v_taken;
END
$$;

-- The latest p_limit events matching, newest first, by patient, user and time; with p_branches,
-- only those about a patient seen at those branches (0004).
CREATE FUNCTION cv_audit.latest(
  p_patient_id uuid, p_user_id uuid, p_from timestamptz, p_to timestamptz, p_limit integer,
  p_branches uuid[] DEFAULT NULL
) RETURNS SETOF cv_audit.events
  LANGUAGE sql STABLE
  BEGIN ATOMIC
    SELECT * FROM cv_audit.events x
    WHERE (p_patient_id IS NULL OR x.patient_id = p_patient_id)
      AND (p_user_id IS NULL OR x.author ->> 'user' = p_user_id::text)
      AND (p_from IS NULL OR x.at >= p_from) AND (p_to IS NULL OR x.at < p_to)
      AND (p_branches IS NULL OR x.patient_id IS NOT NULL AND public.cv_patient_visible_in(x.patient_id, p_branches))
    ORDER BY x.at DESC, x.written DESC
    LIMIT p_limit;
  END;

-- The trail for a reviewer (`centrovision-sync audit list`): the latest p_limit events of this node,
-- by patient, user and time, oldest first. Ids, authors and times; never row data.
CREATE FUNCTION public.cv_audit_events(
  p_patient_id uuid DEFAULT NULL, p_user_id uuid DEFAULT NULL,
  p_from timestamptz DEFAULT NULL, p_to timestamptz DEFAULT NULL, p_limit integer DEFAULT 100
) RETURNS jsonb
  LANGUAGE sql STABLE SECURITY DEFINER
  SET search_path = ''
  RETURN (
    SELECT coalesce(jsonb_agg(jsonb_build_object(
        'at', e.at, 'action', e.action, 'table', e.table_name, 'row_id', e.row_id, 'patient_id', e.patient_id,
        'version', e.version, 'changed_columns', e.changed_columns, 'author', e.author, 'node', e.node_id,
        'position', e.position) ORDER BY e.at, e.written), '[]')
    FROM cv_audit.latest(p_patient_id, p_user_id, p_from, p_to, greatest(coalesce(p_limit, 100), 1)) e
  );

-- The trail for a clinic's administrator (the desktop's Bitácora): the same events, only those
-- about patients the administrator sees (0004), with the patient's and the author's names where
-- the administrator may read them. Refused (42501) to anyone without the admin role.
CREATE FUNCTION public.cv_audit_trail(
  p_patient_id uuid DEFAULT NULL, p_user_id uuid DEFAULT NULL,
  p_from timestamptz DEFAULT NULL, p_to timestamptz DEFAULT NULL, p_limit integer DEFAULT 100
) RETURNS jsonb
  LANGUAGE plpgsql STABLE SECURITY DEFINER
  SET search_path = ''
AS $$
DECLARE
  v_branches uuid[];
BEGIN
  IF auth.uid() IS NULL OR NOT public.cv_user_is_admin() THEN
    RAISE EXCEPTION 'only an administrator reads the audit trail' USING ERRCODE = 'insufficient_privilege';
  END IF;
  v_branches := public.cv_user_branch_ids();
  RETURN (
    SELECT coalesce(jsonb_agg(jsonb_build_object(
        'at', e.at, 'action', e.action, 'table', e.table_name, 'row_id', e.row_id, 'patient_id', e.patient_id,
        'patient_name', concat_ws(' ', p.first_name, p.last_name, p.second_last_name),
        'version', e.version, 'changed_columns', e.changed_columns,
        'author', CASE WHEN e.author IS NOT NULL THEN jsonb_build_object('user', e.author ->> 'user',
          'name', a.full_name, 'sign_in', e.author ->> 'sign_in', 'device', e.author ->> 'device') END,
        'node', e.node_id) ORDER BY e.at, e.written), '[]')
    FROM cv_audit.latest(p_patient_id, p_user_id, p_from, p_to, least(greatest(coalesce(p_limit, 100), 1), 1000),
        v_branches) e
      LEFT JOIN public.patients p ON p.id = e.patient_id
      LEFT JOIN public.profiles a ON a.id::text = e.author ->> 'user'
        AND public.cv_profile_visible_in(a.id, v_branches, auth.uid())
  );
END
$$;

REVOKE ALL ON ALL TABLES IN SCHEMA cv_audit FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA cv_audit FROM PUBLIC;

-- A person records the records they open; an administrator reads the trail of their patients. The sync daemon seals, verifies and reads its clinic
-- server's trail (its role there) and, with its node credential in the cloud, seals the cloud's and
-- hands over its own (cv_sync.require_node, 0005; two at once do not wait for each other). The
-- service key verifies and reads the cloud's. Supabase's default privileges are taken back first.
DO $grants$
DECLARE
  v_all constant text := 'public.cv_audit_record_opened(uuid, timestamptz), public.cv_audit_seal(integer), '
    'public.cv_audit_verify(uuid), public.cv_audit_events(uuid, uuid, timestamptz, timestamptz, integer), '
    'public.cv_audit_head(uuid), public.cv_audit_sealed_after(bigint, integer), public.cv_audit_receive(jsonb), '
    'public.cv_audit_trail(uuid, uuid, timestamptz, timestamptz, integer)';
  v_role text;
BEGIN
  EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', v_all);
  FOR v_role IN SELECT r.rolname FROM pg_roles r WHERE r.rolname IN ('anon', 'authenticated', 'service_role') LOOP
    EXECUTE format('REVOKE ALL ON FUNCTION %s FROM %I', v_all, v_role);
  END LOOP;
  GRANT EXECUTE ON FUNCTION public.cv_audit_record_opened(uuid, timestamptz),
    public.cv_audit_trail(uuid, uuid, timestamptz, timestamptz, integer) TO authenticated;
  GRANT EXECUTE ON FUNCTION public.cv_audit_seal(integer), public.cv_audit_verify(uuid),
    public.cv_audit_events(uuid, uuid, timestamptz, timestamptz, integer), public.cv_audit_sealed_after(bigint, integer)
    TO centrovision_sync;
  IF to_regrole('service_role') IS NOT NULL AND to_regclass('cv_auth.signing_key') IS NULL THEN
    GRANT EXECUTE ON FUNCTION public.cv_audit_seal(integer), public.cv_audit_verify(uuid),
      public.cv_audit_events(uuid, uuid, timestamptz, timestamptz, integer) TO service_role;
    GRANT EXECUTE ON FUNCTION public.cv_audit_seal(integer), public.cv_audit_head(uuid), public.cv_audit_receive(jsonb)
      TO authenticated;
  END IF;
END
$grants$;

-- What `centrovision-sync cloud migrate` records: the project counts as having sql/0012_audit.sql.
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
insert into cv_meta.schema_migrations (name, checksum) values ('0012_audit.sql', 'b9bb7696cefdb9e0774a011495da55728d9bd76ef2ecb90666ccba91320d5b8e') on conflict (name) do nothing;
