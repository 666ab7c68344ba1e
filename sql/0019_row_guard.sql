-- 0019 the sync flag checked for each row too. 0005's guard runs once, at the end of a statement,
-- and reads centrovision.sync_origin then; the row triggers (cv_touch_row, the patient's home
-- branch guard of 0004) read it for each row, before the row is written. Any session may set the
-- setting, in any expression of a statement: set in a WHERE clause and cleared again in RETURNING,
-- the row triggers took the statement for a sync apply (no stamping, no home-branch check) while
-- the guard, at its end, saw an ordinary write and stayed silent. A person could move another
-- branch's patient into their own and write any created_by, updated_by, updated_at or version.
-- Now every row written while the setting is set is checked as the statement is, unless the
-- statement runs as the owner of the sync's functions (current_user, as their SECURITY DEFINER
-- calls run): only a transaction that cv_sync.begin_apply registered may write it. The owner's
-- statements are the applies, whose expressions no caller writes; a caller who set the setting
-- before calling one is refused at the statement's end, where it is still set. So neither an
-- ordinary write (the setting empty) nor a replicated row calls the check: checked for each row,
-- the apply's inserts took 11 µs more a row (10,000 patients: 510 against 400 ms, eight runs
-- each). No expression of a statement runs between a row's BEFORE triggers, so the row triggers
-- see the setting the check saw.

-- 0005's guard, for a statement (AFTER, returns NULL) and now also for a row (BEFORE, returns the
-- row unchanged: NULL would drop it).
CREATE OR REPLACE FUNCTION cv_sync.guard() RETURNS trigger
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
  IF TG_LEVEL = 'ROW' THEN
    RETURN NEW;
  END IF;
  RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION cv_sync.guard() FROM PUBLIC;

-- The owner: the role migrating now, which owns cv_sync.begin_apply and the functions that call it.
DO $install$
DECLARE
  v_table text;
  v_owner name := (SELECT p.proowner::regrole::text FROM pg_catalog.pg_proc p
    WHERE p.oid = 'cv_sync.begin_apply(uuid)'::regprocedure);
BEGIN
  FOR v_table IN SELECT table_name FROM cv_sync.synced_tables ORDER BY position LOOP
    EXECUTE format('CREATE TRIGGER cv_sync_guard_row BEFORE INSERT OR UPDATE ON public.%I FOR EACH ROW '
      'WHEN (coalesce(pg_catalog.current_setting(''centrovision.sync_origin'', true), '''') <> '''' '
      'AND CURRENT_USER <> %L) EXECUTE FUNCTION cv_sync.guard()', v_table, v_owner);
  END LOOP;
END
$install$;

CALL cv_sync.grant_rpc();
