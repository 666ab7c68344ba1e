-- 0004 Row-level security, the same on the cloud and the clinic server.
--
-- One set of policies for both tiers. On Supabase, `auth.uid()` is the person of the request's JWT
-- (verified by the API gateway); on the clinic server it is the person of the connection's clinic
-- session, verified inside PostgreSQL by 0003. Either way the role is `authenticated`, and a
-- statement without a verified person (auth.uid() NULL) sees and writes no row.
--
-- Access model (role authenticated; anon gets nothing; service_role has BYPASSRLS in Supabase):
--   * A user works in the branches listed for them in user_branches.
--   * Clinical rows (appointments, encounters) belong to their branch_id; exam_eye and diagnoses
--     reach it through their encounter.
--   * A patient is visible where their home branch is, or where they have an appointment or an
--     encounter: patients are seen at branches other than the one that registered them.
--   * Branch configuration (branches, rooms) is readable by members, writable by members holding
--     the admin role. Creating branches and managing users, roles and memberships is done with
--     service_role (Supabase dashboard or admin tooling), never from a clinic PC session.
--   * profiles: a user sees their own row and colleagues sharing a branch (to pick a doctor),
--     and edits only their own row. user_roles/user_branches: own rows and colleagues', read only.
--
-- Helpers are SECURITY DEFINER so a policy can read user_branches/user_roles without being
-- filtered by those tables' own policies (which would hide colleagues and recurse). They are
-- STABLE and called in sub-selects, so PostgreSQL evaluates them once per statement, not per row.
-- An EXISTS over another table inside a policy is itself filtered by that table's policies, so
-- "a patient's appointment" means one in the user's branches and the branch rule is written once.

DO $rls$
DECLARE
  v_role text;
BEGIN
  IF to_regprocedure('auth.uid()') IS NULL OR to_regrole('authenticated') IS NULL THEN
    RAISE EXCEPTION '0004: schema auth with auth.uid() and role authenticated are missing'
      USING HINT = 'On Supabase they come with the project; elsewhere 0003 creates them.';
  END IF;

  -- The signed-in person's branches, as one array: every branch rule below compares with it as
  -- `= ANY ((SELECT …)::uuid[])`, an InitPlan evaluated once per statement (no set-returning
  -- function, no hashing) that an index on branch_id can use. PL/pgSQL rather than SQL: its
  -- query's plan is kept for the session, where an SQL function's is set up again on every
  -- statement. On the clinic server the branches come with the remembered verification (0003: any
  -- change to user_branches makes sessions verify again), so a statement pays one lookup for the
  -- person and their branches together; without one, auth.uid() verifies or says why not.
  IF to_regclass('cv_auth.verified_sessions') IS NULL THEN
    CREATE FUNCTION public.cv_user_branch_ids() RETURNS uuid[]
      LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = ''
      AS $fn$
      BEGIN
        RETURN array(SELECT ub.branch_id FROM public.user_branches ub WHERE ub.user_id = auth.uid());
      END
      $fn$;
  ELSE
    CREATE FUNCTION public.cv_user_branch_ids() RETURNS uuid[]
      LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = ''
      AS $fn$
      DECLARE
        v_branch_ids uuid[];
      BEGIN
        SELECT v.branch_ids INTO v_branch_ids
        FROM cv_auth.verified_sessions v
          JOIN cv_auth.signing_key k ON k.key_id = v.key_id AND k.access_generation = v.access_generation
        WHERE v.token_hash = sha256(convert_to(current_setting('centrovision.session', true), 'UTF8'))
          AND v.expires_at > now();
        IF NOT FOUND THEN
          RETURN array(SELECT ub.branch_id FROM public.user_branches ub WHERE ub.user_id = auth.uid());
        END IF;
        RETURN v_branch_ids;
      END
      $fn$;
  END IF;

  CREATE FUNCTION public.cv_colleague_ids() RETURNS SETOF uuid
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
    AS $fn$
      SELECT DISTINCT ub.user_id
      FROM public.user_branches ub
      WHERE ub.branch_id = ANY ((SELECT public.cv_user_branch_ids())::uuid[])
    $fn$;

  CREATE FUNCTION public.cv_user_is_admin() RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
    AS $fn$
      SELECT EXISTS (
        SELECT FROM public.user_roles ur WHERE ur.user_id = auth.uid() AND ur.role = 'admin'
      )
    $fn$;

  -- Whether the signed-in person sees this patient: the rule of patients_visible_read below, for
  -- one patient id. The write checks call it (a row links only a patient its writer already sees;
  -- the policy itself cannot be consulted there without a cycle between the two tables' policies),
  -- while reads keep the policy's set-based form, which a scan evaluates far faster. Both are
  -- kept equal by packages/core/test/schema-rls.test.ts.
  CREATE FUNCTION public.cv_patient_visible_in(p_patient_id uuid, p_branches uuid[]) RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
    RETURN EXISTS (SELECT FROM public.patients p WHERE p.id = p_patient_id AND p.branch_id = ANY (p_branches))
      OR EXISTS (SELECT FROM public.appointments a WHERE a.patient_id = p_patient_id AND a.branch_id = ANY (p_branches))
      OR EXISTS (SELECT FROM public.encounters e WHERE e.patient_id = p_patient_id AND e.branch_id = ANY (p_branches));

  CREATE FUNCTION public.cv_patient_visible(p_patient_id uuid) RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
    RETURN public.cv_patient_visible_in(p_patient_id, public.cv_user_branch_ids());

  -- A profile p_user sees: their own, or a colleague's (someone working at one of p_branches).
  CREATE FUNCTION public.cv_profile_visible_in(p_profile_id uuid, p_branches uuid[], p_user uuid) RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
    RETURN p_profile_id = p_user
      OR EXISTS (SELECT FROM public.user_branches ub WHERE ub.user_id = p_profile_id AND ub.branch_id = ANY (p_branches));

  -- The write rules, once: may p_user write row p_row of p_table (p_op: insert, update, or write
  -- for a policy covering both insert and update; p_old: the row before, for an update)? With
  -- p_op delete or old: may p_user delete p_row, or change it at all (the USING side of the
  -- policies below, which keep their set-based form so that reads can use an index).
  -- The WITH CHECK of every policy below and the patients' home guard call it for the signed-in
  -- person; the cloud calls it for the author of a change a clinic server sends (sql/0007), so a
  -- change is applied only if its author could have made it here. A row links only what its
  -- writer already sees: the patient, the room (of the same branch), the doctor, the appointment
  -- (of the same patient). A foreign key alone is checked past row-level security, so it would let
  -- a write point at another branch's patient and, through that appointment, open the patient's
  -- record; and its error would tell that the id exists.
  -- p_mine: p_user's branches (cv_row_writable reads them; the cloud's check, once per author).
  CREATE FUNCTION public.cv_row_writable_in(p_table text, p_op text, p_row jsonb, p_old jsonb, p_user uuid,
    p_mine uuid[]) RETURNS boolean
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = ''
    AS $fn$
    DECLARE
      v_mine uuid[] := coalesce(p_mine, '{}');
      v_branch uuid := (p_row ->> 'branch_id')::uuid;
      v_patient uuid := (p_row ->> 'patient_id')::uuid;
    BEGIN
      -- Branches and profiles have an update policy only; memberships and roles none at all.
      IF p_user IS NULL OR p_table IN ('branches', 'profiles') AND p_op NOT IN ('update', 'old') THEN
        RETURN false;
      END IF;
      IF p_op IN ('delete', 'old') THEN
        RETURN CASE
          WHEN p_table IN ('branches', 'rooms') THEN
            (CASE p_table WHEN 'branches' THEN (p_row ->> 'id')::uuid ELSE v_branch END) = ANY (v_mine)
              AND EXISTS (SELECT FROM public.user_roles ur WHERE ur.user_id = p_user AND ur.role = 'admin')
          WHEN p_table = 'profiles' THEN (p_row ->> 'id')::uuid = p_user
          WHEN p_table = 'patients' THEN CASE WHEN p_op = 'delete' THEN v_branch = ANY (v_mine)
            ELSE public.cv_patient_visible_in((p_row ->> 'id')::uuid, v_mine) END
          WHEN p_table IN ('appointments', 'encounters') THEN v_branch = ANY (v_mine)
          WHEN p_table IN ('exam_eye', 'diagnoses') THEN EXISTS (SELECT FROM public.encounters e
            WHERE e.id = (p_row ->> 'encounter_id')::uuid AND e.branch_id = ANY (v_mine))
          ELSE false END;
      END IF;
      CASE p_table
        WHEN 'branches', 'rooms' THEN
          RETURN (CASE p_table WHEN 'branches' THEN (p_row ->> 'id')::uuid ELSE v_branch END) = ANY (v_mine)
            AND EXISTS (SELECT FROM public.user_roles ur WHERE ur.user_id = p_user AND ur.role = 'admin');
        WHEN 'profiles' THEN
          RETURN (p_row ->> 'id')::uuid = p_user;
        WHEN 'patients' THEN
          RETURN CASE WHEN p_op = 'insert' THEN v_branch = ANY (v_mine)
            ELSE public.cv_patient_visible_in((p_row ->> 'id')::uuid, v_mine)
              AND (p_old IS NULL OR (p_old ->> 'branch_id')::uuid = v_branch
                OR (p_old ->> 'branch_id')::uuid = ANY (v_mine)) END;
        WHEN 'appointments' THEN
          RETURN v_branch = ANY (v_mine) AND public.cv_patient_visible_in(v_patient, v_mine)
            AND (p_row ->> 'room_id' IS NULL OR EXISTS (SELECT FROM public.rooms r
              WHERE r.id = (p_row ->> 'room_id')::uuid AND r.branch_id = v_branch))
            AND (p_row ->> 'doctor_id' IS NULL OR public.cv_profile_visible_in((p_row ->> 'doctor_id')::uuid, v_mine, p_user));
        WHEN 'encounters' THEN
          RETURN v_branch = ANY (v_mine) AND public.cv_patient_visible_in(v_patient, v_mine)
            AND (p_row ->> 'appointment_id' IS NULL OR EXISTS (SELECT FROM public.appointments a
              WHERE a.id = (p_row ->> 'appointment_id')::uuid AND a.patient_id = v_patient AND a.branch_id = ANY (v_mine)))
            AND public.cv_profile_visible_in((p_row ->> 'doctor_id')::uuid, v_mine, p_user);
        WHEN 'exam_eye', 'diagnoses' THEN
          RETURN EXISTS (SELECT FROM public.encounters e
            WHERE e.id = (p_row ->> 'encounter_id')::uuid AND e.branch_id = ANY (v_mine)
              AND (p_table = 'exam_eye' OR e.patient_id = v_patient));
        ELSE
          RETURN false;
      END CASE;
    END
    $fn$;

  CREATE FUNCTION public.cv_row_writable(p_table text, p_op text, p_row jsonb, p_old jsonb, p_user uuid)
    RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
    RETURN public.cv_row_writable_in(p_table, p_op, p_row, p_old, p_user,
      CASE WHEN p_user IS NOT DISTINCT FROM auth.uid() THEN public.cv_user_branch_ids()
        ELSE array(SELECT ub.branch_id FROM public.user_branches ub WHERE ub.user_id = p_user) END);

  -- The rules for the signed-in person: what the policies call.
  CREATE FUNCTION public.cv_may_write(p_table text, p_op text, p_row jsonb) RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
    RETURN public.cv_row_writable(p_table, p_op, p_row, NULL, auth.uid());

  -- A patient's home branch moves only by a user of that branch (the policies see the new row
  -- alone: a user who sees the patient through an appointment could otherwise take them home).
  -- The service key, the owner and the sync (rows from a peer) are not a signed-in person.
  CREATE FUNCTION public.cv_patient_home_guard() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = ''
    AS $fn$
    BEGIN
      IF auth.uid() IS NOT NULL
        AND NOT public.cv_row_writable('patients', 'update', to_jsonb(NEW), to_jsonb(OLD), auth.uid()) THEN
        RAISE EXCEPTION 'only a user of the patient''s home branch may move the patient to another branch'
          USING ERRCODE = 'insufficient_privilege', HINT = 'Ask a user of the home branch to move the patient.';
      END IF;
      RETURN NEW;
    END
    $fn$;
  CREATE TRIGGER cv_patient_home_guard BEFORE UPDATE OF branch_id ON public.patients
    FOR EACH ROW
    WHEN (OLD.branch_id IS DISTINCT FROM NEW.branch_id
      AND coalesce(pg_catalog.current_setting('centrovision.sync_origin', true), '') = '')
    EXECUTE FUNCTION public.cv_patient_home_guard();

  -- Supabase's default privileges hand every new function and table to anon and authenticated;
  -- take them back and grant what the policies below are written for. The trigger function of
  -- 0002 is no one's to call; the search fold of 0001 is for signed-in searches only.
  -- The rules for any person (cv_row_writable and its helpers) are the owner's alone: asked about
  -- another person or arbitrary branches, they would tell which patients exist where.
  REVOKE ALL ON FUNCTION public.cv_user_branch_ids(), public.cv_colleague_ids(), public.cv_user_is_admin(),
    public.cv_patient_visible(uuid), public.cv_may_write(text, text, jsonb),
    public.cv_search_fold(text)
    FROM PUBLIC;
  REVOKE ALL ON FUNCTION public.cv_touch_row(), public.cv_patient_home_guard(),
    public.cv_patient_visible_in(uuid, uuid[]), public.cv_profile_visible_in(uuid, uuid[], uuid),
    public.cv_row_writable(text, text, jsonb, jsonb, uuid), public.cv_row_writable_in(text, text, jsonb, jsonb, uuid, uuid[])
    FROM PUBLIC;
  FOR v_role IN SELECT r.rolname FROM pg_roles r WHERE r.rolname IN ('anon', 'authenticated', 'service_role') LOOP
    EXECUTE format('REVOKE ALL ON FUNCTION public.cv_touch_row(), public.cv_patient_home_guard(), '
      'public.cv_patient_visible_in(uuid, uuid[]), public.cv_profile_visible_in(uuid, uuid[], uuid), '
      'public.cv_row_writable(text, text, jsonb, jsonb, uuid), public.cv_row_writable_in(text, text, jsonb, jsonb, uuid, uuid[]) '
      'FROM %I', v_role);
    EXECUTE format('REVOKE ALL ON public.branches, public.rooms, public.profiles, public.user_roles, '
      'public.user_branches, public.patients, public.appointments, public.encounters, public.exam_eye, '
      'public.diagnoses FROM %I', v_role);
    IF v_role = 'anon' THEN
      EXECUTE 'REVOKE ALL ON FUNCTION public.cv_user_branch_ids(), public.cv_colleague_ids(), public.cv_patient_visible(uuid), '
        'public.cv_may_write(text, text, jsonb), public.cv_user_is_admin(), public.cv_search_fold(text) FROM anon';
      CONTINUE;
    END IF;
    EXECUTE format('GRANT EXECUTE ON FUNCTION public.cv_user_branch_ids(), public.cv_colleague_ids(), public.cv_patient_visible(uuid), '
      'public.cv_may_write(text, text, jsonb), public.cv_user_is_admin(), public.cv_search_fold(text) TO %I', v_role);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON public.branches, public.rooms, public.profiles, '
      'public.user_roles, public.user_branches, public.patients, public.appointments, public.encounters, '
      'public.exam_eye, public.diagnoses TO %I', v_role);
  END LOOP;

  ALTER TABLE public.branches ENABLE ROW LEVEL SECURITY;
  ALTER TABLE public.rooms ENABLE ROW LEVEL SECURITY;
  ALTER TABLE public.profiles ENABLE ROW LEVEL SECURITY;
  ALTER TABLE public.user_roles ENABLE ROW LEVEL SECURITY;
  ALTER TABLE public.user_branches ENABLE ROW LEVEL SECURITY;
  ALTER TABLE public.patients ENABLE ROW LEVEL SECURITY;
  ALTER TABLE public.appointments ENABLE ROW LEVEL SECURITY;
  ALTER TABLE public.encounters ENABLE ROW LEVEL SECURITY;
  ALTER TABLE public.exam_eye ENABLE ROW LEVEL SECURITY;
  ALTER TABLE public.diagnoses ENABLE ROW LEVEL SECURITY;

  -- Every WITH CHECK is public.cv_row_writable (above, through cv_may_write), the rules written
  -- once. The USING clauses decide which rows a statement sees, reads included, so they stay
  -- set-based and indexable.
  CREATE POLICY branches_member_read ON public.branches FOR SELECT TO authenticated
    USING (id = ANY ((SELECT public.cv_user_branch_ids())::uuid[]));
  CREATE POLICY branches_admin_update ON public.branches FOR UPDATE TO authenticated
    USING (id = ANY ((SELECT public.cv_user_branch_ids())::uuid[]) AND (SELECT public.cv_user_is_admin()))
    WITH CHECK (public.cv_may_write('branches', 'update', to_jsonb(branches.*)));

  CREATE POLICY rooms_member_read ON public.rooms FOR SELECT TO authenticated
    USING (branch_id = ANY ((SELECT public.cv_user_branch_ids())::uuid[]));
  CREATE POLICY rooms_admin_write ON public.rooms FOR ALL TO authenticated
    USING (branch_id = ANY ((SELECT public.cv_user_branch_ids())::uuid[]) AND (SELECT public.cv_user_is_admin()))
    WITH CHECK (public.cv_may_write('rooms', 'write', to_jsonb(rooms.*)));

  CREATE POLICY profiles_colleague_read ON public.profiles FOR SELECT TO authenticated
    USING (id = (SELECT auth.uid()) OR id IN (SELECT public.cv_colleague_ids()));
  CREATE POLICY profiles_own_update ON public.profiles FOR UPDATE TO authenticated
    USING (id = (SELECT auth.uid()))
    WITH CHECK (public.cv_may_write('profiles', 'update', to_jsonb(profiles.*)));

  CREATE POLICY user_roles_colleague_read ON public.user_roles FOR SELECT TO authenticated
    USING (user_id = (SELECT auth.uid()) OR user_id IN (SELECT public.cv_colleague_ids()));

  CREATE POLICY user_branches_colleague_read ON public.user_branches FOR SELECT TO authenticated
    USING (user_id = (SELECT auth.uid()) OR branch_id = ANY ((SELECT public.cv_user_branch_ids())::uuid[]));

  CREATE POLICY patients_visible_read ON public.patients FOR SELECT TO authenticated
    USING (
      branch_id = ANY ((SELECT public.cv_user_branch_ids())::uuid[])
      OR EXISTS (SELECT FROM public.appointments a WHERE a.patient_id = patients.id)
      OR EXISTS (SELECT FROM public.encounters e WHERE e.patient_id = patients.id)
    );
  CREATE POLICY patients_visible_update ON public.patients FOR UPDATE TO authenticated
    USING (
      branch_id = ANY ((SELECT public.cv_user_branch_ids())::uuid[])
      OR EXISTS (SELECT FROM public.appointments a WHERE a.patient_id = patients.id)
      OR EXISTS (SELECT FROM public.encounters e WHERE e.patient_id = patients.id)
    )
    WITH CHECK (public.cv_may_write('patients', 'update', to_jsonb(patients.*)));
  CREATE POLICY patients_home_insert ON public.patients FOR INSERT TO authenticated
    WITH CHECK (public.cv_may_write('patients', 'insert', to_jsonb(patients.*)));
  CREATE POLICY patients_home_delete ON public.patients FOR DELETE TO authenticated
    USING (branch_id = ANY ((SELECT public.cv_user_branch_ids())::uuid[]));

  CREATE POLICY appointments_member_all ON public.appointments FOR ALL TO authenticated
    USING (branch_id = ANY ((SELECT public.cv_user_branch_ids())::uuid[]))
    WITH CHECK (public.cv_may_write('appointments', 'write', to_jsonb(appointments.*)));

  CREATE POLICY encounters_member_all ON public.encounters FOR ALL TO authenticated
    USING (branch_id = ANY ((SELECT public.cv_user_branch_ids())::uuid[]))
    WITH CHECK (public.cv_may_write('encounters', 'write', to_jsonb(encounters.*)));

  CREATE POLICY exam_eye_member_all ON public.exam_eye FOR ALL TO authenticated
    USING (EXISTS (SELECT FROM public.encounters e WHERE e.id = exam_eye.encounter_id))
    WITH CHECK (public.cv_may_write('exam_eye', 'write', to_jsonb(exam_eye.*)));

  CREATE POLICY diagnoses_member_all ON public.diagnoses FOR ALL TO authenticated
    USING (EXISTS (SELECT FROM public.encounters e WHERE e.id = diagnoses.encounter_id))
    WITH CHECK (public.cv_may_write('diagnoses', 'write', to_jsonb(diagnoses.*)));
END
$rls$;
