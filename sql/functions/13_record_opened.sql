-- cv_audit_record_opened (first created in 0012): a signed-in person opened a patient's record. An
-- event, only for a patient they see (the same rule as the patients policy, 0004). p_opened_at:
-- when, for an opening the PC held while no server answered (NULL: now). Never later than this
-- server's clock plus the allowed skew (CV009: the PC keeps it queued until the clocks agree).
-- Never earlier than the oldest a PC can hold an opening: an outage no node outlasts (90 days, the
-- change log's purge). A time before that (a PC's clock reset to 1970, or -infinity from anyone
-- with psql) is no time the opening happened: such an opening is recorded at this server's clock
-- instead, when it arrived. Dated earlier, it would
-- drop out of every trail read by time, and the retention would let it be deleted at once.
-- Returns the event's id.
CREATE OR REPLACE FUNCTION public.cv_audit_record_opened(p_patient_id uuid, p_opened_at timestamptz DEFAULT NULL)
  RETURNS uuid
  LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = ''
AS $$
DECLARE
  v_event uuid;
  v_at timestamptz := clock_timestamp();
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
    IF p_opened_at >= v_at - interval '90 days' THEN
      v_at := p_opened_at;
    END IF;
  END IF;
  INSERT INTO cv_audit.events (node_id, at, author, action, table_name, row_id, patient_id)
  SELECT n.node_id, v_at, cv_sync.current_author(), 'open', 'patients', p_patient_id, p_patient_id
  FROM cv_sync.node n
  RETURNING event_id INTO v_event;
  RETURN v_event;
END
$$;

CALL cv_sync.grant_rpc();
