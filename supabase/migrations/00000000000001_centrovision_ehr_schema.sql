-- Generated from sql/0001_ehr_schema.sql by `npm run supabase:migrations`: do not edit (edit sql/0001_ehr_schema.sql and run that again).
-- 0001 EHR schema: enum types, the ten EHR tables, their constraints and indexes.
--
-- The zod definitions in packages/core/src/tables/ describe the same tables; every CHECK below has
-- the same rule there. packages/core/test/schema.test.ts proves the shapes agree and
-- schema-validation.test.ts that both reject the same values. Change both.
--
-- Conventions
-- * Every table starts with id, created_at, updated_at, version, base_version, created_by and
--   updated_by (see 0002). created_by/updated_by name the signed-in person who wrote the row
--   (auth.uid()), NULL for a write without one (the owner, a migration); no foreign key: the
--   author of a row may be a person whose profile a clinic server does not hold.
--   `id` has no default: the writer makes it, so a retried insert on another tier is idempotent.
-- * timestamptz(3): milliseconds, the precision JavaScript and the canonical form carry, so a
--   value survives a round trip through every source unchanged.
-- * A CHECK on one column is named <table>_<column>_<rule>, so an adapter can name the offending
--   field; a rule across columns is listed by name in the zod definition's `checks`.
-- * No extension is used: the same file runs on Supabase, the clinic server and in tests.
-- * Clinical rows are never deleted by a cascade (ON DELETE RESTRICT); join tables cascade.

CREATE TYPE public.room_kind AS ENUM ('consultation', 'optometry', 'diagnostics', 'procedure', 'surgery');
CREATE TYPE public.staff_role AS ENUM ('admin', 'doctor', 'optometrist', 'nurse', 'reception', 'technician');
CREATE TYPE public.patient_sex AS ENUM ('female', 'male', 'intersex', 'unknown');
CREATE TYPE public.appointment_status AS ENUM (
  'scheduled', 'confirmed', 'checked_in', 'in_progress', 'completed', 'cancelled', 'no_show'
);
CREATE TYPE public.appointment_type AS ENUM (
  'first_visit', 'follow_up', 'post_op', 'surgery', 'study', 'emergency'
);
CREATE TYPE public.encounter_status AS ENUM ('open', 'signed');
CREATE TYPE public.eye AS ENUM ('OD', 'OS');
CREATE TYPE public.laterality AS ENUM ('OD', 'OS', 'OU');
CREATE TYPE public.iop_method AS ENUM ('goldmann', 'icare', 'pneumotonometer', 'tonopen');
CREATE TYPE public.diagnosis_status AS ENUM ('active', 'resolved', 'ruled_out');

-- Folds case and Spanish/Portuguese accents so "nunez" finds "Núñez". unaccent would be more
-- complete but is an extension; this needs none. IMMUTABLE so it can back expression indexes.
CREATE FUNCTION public.cv_search_fold(value text) RETURNS text
  LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
  RETURN lower(translate(
    value,
    'ÁÀÂÄÃÉÈÊËÍÌÎÏÓÒÔÖÕÚÙÛÜÑÇáàâäãéèêëíìîïóòôöõúùûüñç',
    'AAAAAEEEEIIIIOOOOOUUUUNCaaaaaeeeeiiiiooooouuuunc'
  ));

CREATE TABLE public.branches (
  id uuid PRIMARY KEY,
  created_at timestamptz(3) NOT NULL DEFAULT now(),
  updated_at timestamptz(3) NOT NULL DEFAULT now(),
  version uuid NOT NULL DEFAULT gen_random_uuid(),
  base_version uuid,
  created_by uuid,
  updated_by uuid,
  code text NOT NULL CONSTRAINT branches_code_format CHECK (code ~ '^[A-Z0-9][A-Z0-9-]{1,15}$'),
  name text NOT NULL CONSTRAINT branches_name_not_blank CHECK (name ~ '\S'),
  address text NOT NULL CONSTRAINT branches_address_not_blank CHECK (address ~ '\S'),
  phone text CONSTRAINT branches_phone_format CHECK (phone ~ '^\+?[0-9() -]{7,25}$'),
  timezone text NOT NULL DEFAULT 'America/Mexico_City'
    CONSTRAINT branches_timezone_format CHECK (timezone ~ '^(UTC|[A-Za-z]+(/[A-Za-z0-9_+-]+)+)$'),
  active boolean NOT NULL DEFAULT true,
  CONSTRAINT branches_code_key UNIQUE (code)
);

CREATE TABLE public.rooms (
  id uuid PRIMARY KEY,
  created_at timestamptz(3) NOT NULL DEFAULT now(),
  updated_at timestamptz(3) NOT NULL DEFAULT now(),
  version uuid NOT NULL DEFAULT gen_random_uuid(),
  base_version uuid,
  created_by uuid,
  updated_by uuid,
  branch_id uuid NOT NULL REFERENCES public.branches (id) ON DELETE RESTRICT,
  name text NOT NULL CONSTRAINT rooms_name_not_blank CHECK (name ~ '\S'),
  kind public.room_kind NOT NULL,
  active boolean NOT NULL DEFAULT true,
  CONSTRAINT rooms_branch_id_name_key UNIQUE (branch_id, name)
);

-- id is the Supabase auth user id. No foreign key to auth.users: it exists only in the cloud.
CREATE TABLE public.profiles (
  id uuid PRIMARY KEY,
  created_at timestamptz(3) NOT NULL DEFAULT now(),
  updated_at timestamptz(3) NOT NULL DEFAULT now(),
  version uuid NOT NULL DEFAULT gen_random_uuid(),
  base_version uuid,
  created_by uuid,
  updated_by uuid,
  full_name text NOT NULL CONSTRAINT profiles_full_name_not_blank CHECK (full_name ~ '\S'),
  email text
    CONSTRAINT profiles_email_format CHECK (email ~ '^[^@\s]+@[^@\s]+\.[^@\s]+$')
    CONSTRAINT profiles_email_lowercase CHECK (email !~ '[A-Z]'),
  professional_license text
    CONSTRAINT profiles_professional_license_not_blank CHECK (professional_license ~ '\S'),
  active boolean NOT NULL DEFAULT true,
  CONSTRAINT profiles_email_key UNIQUE (email)
);

CREATE TABLE public.user_roles (
  id uuid PRIMARY KEY,
  created_at timestamptz(3) NOT NULL DEFAULT now(),
  updated_at timestamptz(3) NOT NULL DEFAULT now(),
  version uuid NOT NULL DEFAULT gen_random_uuid(),
  base_version uuid,
  created_by uuid,
  updated_by uuid,
  user_id uuid NOT NULL REFERENCES public.profiles (id) ON DELETE CASCADE,
  role public.staff_role NOT NULL,
  CONSTRAINT user_roles_user_id_role_key UNIQUE (user_id, role)
);

CREATE TABLE public.user_branches (
  id uuid PRIMARY KEY,
  created_at timestamptz(3) NOT NULL DEFAULT now(),
  updated_at timestamptz(3) NOT NULL DEFAULT now(),
  version uuid NOT NULL DEFAULT gen_random_uuid(),
  base_version uuid,
  created_by uuid,
  updated_by uuid,
  user_id uuid NOT NULL REFERENCES public.profiles (id) ON DELETE CASCADE,
  branch_id uuid NOT NULL REFERENCES public.branches (id) ON DELETE CASCADE,
  CONSTRAINT user_branches_user_id_branch_id_key UNIQUE (user_id, branch_id)
);
CREATE INDEX user_branches_branch_id_idx ON public.user_branches (branch_id);

CREATE TABLE public.patients (
  id uuid PRIMARY KEY,
  created_at timestamptz(3) NOT NULL DEFAULT now(),
  updated_at timestamptz(3) NOT NULL DEFAULT now(),
  version uuid NOT NULL DEFAULT gen_random_uuid(),
  base_version uuid,
  created_by uuid,
  updated_by uuid,
  branch_id uuid NOT NULL REFERENCES public.branches (id) ON DELETE RESTRICT,
  first_name text NOT NULL CONSTRAINT patients_first_name_not_blank CHECK (first_name ~ '\S'),
  last_name text NOT NULL CONSTRAINT patients_last_name_not_blank CHECK (last_name ~ '\S'),
  second_last_name text CONSTRAINT patients_second_last_name_not_blank CHECK (second_last_name ~ '\S'),
  -- Unique within a branch (see the constraint below).
  document_id text CONSTRAINT patients_document_id_format CHECK (document_id ~ '^[A-Z0-9-]{4,32}$'),
  birth_date date NOT NULL CONSTRAINT patients_birth_date_range CHECK (birth_date >= DATE '1900-01-01'),
  sex public.patient_sex NOT NULL,
  phone text NOT NULL CONSTRAINT patients_phone_format CHECK (phone ~ '^\+?[0-9() -]{7,25}$'),
  email text
    CONSTRAINT patients_email_format CHECK (email ~ '^[^@\s]+@[^@\s]+\.[^@\s]+$')
    CONSTRAINT patients_email_lowercase CHECK (email !~ '[A-Z]'),
  address text CONSTRAINT patients_address_not_blank CHECK (address ~ '\S'),
  allergies text CONSTRAINT patients_allergies_not_blank CHECK (allergies ~ '\S'),
  notes text CONSTRAINT patients_notes_not_blank CHECK (notes ~ '\S'),
  -- The same person registered twice at one branch (perhaps on two tiers during an outage) is
  -- caught. Not across branches: whoever registers a patient works at that branch and sees all of
  -- its patients, so this check tells them nothing about a patient they may not see, where a
  -- network-wide key would answer "this document is a patient somewhere" to anyone who tries.
  CONSTRAINT patients_branch_id_document_id_key UNIQUE (branch_id, document_id)
);
CREATE INDEX patients_branch_id_idx ON public.patients (branch_id);
-- Finding a patient by their document, in the branches the person sees.
CREATE INDEX patients_document_id_idx ON public.patients (document_id);
-- Prefix search by surname then name ("gonz" → González …); text_pattern_ops makes LIKE 'x%'
-- use the index whatever the database collation.
CREATE INDEX patients_name_search_idx ON public.patients (
  public.cv_search_fold(last_name) text_pattern_ops,
  public.cv_search_fold(first_name) text_pattern_ops
);
CREATE INDEX patients_first_name_search_idx ON public.patients (public.cv_search_fold(first_name) text_pattern_ops);

CREATE TABLE public.appointments (
  id uuid PRIMARY KEY,
  created_at timestamptz(3) NOT NULL DEFAULT now(),
  updated_at timestamptz(3) NOT NULL DEFAULT now(),
  version uuid NOT NULL DEFAULT gen_random_uuid(),
  base_version uuid,
  created_by uuid,
  updated_by uuid,
  branch_id uuid NOT NULL REFERENCES public.branches (id) ON DELETE RESTRICT,
  -- A room can be retired without rewriting the agenda's history.
  room_id uuid REFERENCES public.rooms (id) ON DELETE SET NULL,
  patient_id uuid NOT NULL REFERENCES public.patients (id) ON DELETE RESTRICT,
  doctor_id uuid REFERENCES public.profiles (id) ON DELETE RESTRICT,
  starts_at timestamptz(3) NOT NULL,
  ends_at timestamptz(3) NOT NULL,
  status public.appointment_status NOT NULL DEFAULT 'scheduled',
  reason text NOT NULL CONSTRAINT appointments_reason_not_blank CHECK (reason ~ '\S'),
  type public.appointment_type NOT NULL,
  checked_in_at timestamptz(3),
  notes text CONSTRAINT appointments_notes_not_blank CHECK (notes ~ '\S'),
  CONSTRAINT appointments_ends_after_start CHECK (ends_at > starts_at)
);
-- The day's agenda of a branch, of a doctor and of a room; a patient's appointment history.
CREATE INDEX appointments_branch_id_starts_at_idx ON public.appointments (branch_id, starts_at);
CREATE INDEX appointments_doctor_id_starts_at_idx ON public.appointments (doctor_id, starts_at);
CREATE INDEX appointments_room_id_starts_at_idx ON public.appointments (room_id, starts_at);
CREATE INDEX appointments_patient_id_starts_at_idx ON public.appointments (patient_id, starts_at);

CREATE TABLE public.encounters (
  id uuid PRIMARY KEY,
  created_at timestamptz(3) NOT NULL DEFAULT now(),
  updated_at timestamptz(3) NOT NULL DEFAULT now(),
  version uuid NOT NULL DEFAULT gen_random_uuid(),
  base_version uuid,
  created_by uuid,
  updated_by uuid,
  patient_id uuid NOT NULL REFERENCES public.patients (id) ON DELETE RESTRICT,
  appointment_id uuid REFERENCES public.appointments (id) ON DELETE RESTRICT,
  branch_id uuid NOT NULL REFERENCES public.branches (id) ON DELETE RESTRICT,
  doctor_id uuid NOT NULL REFERENCES public.profiles (id) ON DELETE RESTRICT,
  started_at timestamptz(3) NOT NULL,
  ended_at timestamptz(3),
  chief_complaint text NOT NULL CONSTRAINT encounters_chief_complaint_not_blank CHECK (chief_complaint ~ '\S'),
  history text CONSTRAINT encounters_history_not_blank CHECK (history ~ '\S'),
  assessment text CONSTRAINT encounters_assessment_not_blank CHECK (assessment ~ '\S'),
  plan text CONSTRAINT encounters_plan_not_blank CHECK (plan ~ '\S'),
  notes text CONSTRAINT encounters_notes_not_blank CHECK (notes ~ '\S'),
  status public.encounter_status NOT NULL DEFAULT 'open',
  CONSTRAINT encounters_ends_after_start CHECK (ended_at >= started_at)
);
CREATE INDEX encounters_patient_id_started_at_idx ON public.encounters (patient_id, started_at);
CREATE INDEX encounters_appointment_id_idx ON public.encounters (appointment_id);
CREATE INDEX encounters_branch_id_started_at_idx ON public.encounters (branch_id, started_at);
CREATE INDEX encounters_doctor_id_started_at_idx ON public.encounters (doctor_id, started_at);

-- One row per eye per encounter. Visual acuity is kept as written (Snellen) and as logMAR, the
-- form that can be averaged and plotted. Dioptres come in quarter steps; numeric scale alone
-- would silently round 1.3 to 1.30, so the steps are checked (the zod schema rejects them first).
CREATE TABLE public.exam_eye (
  id uuid PRIMARY KEY,
  created_at timestamptz(3) NOT NULL DEFAULT now(),
  updated_at timestamptz(3) NOT NULL DEFAULT now(),
  version uuid NOT NULL DEFAULT gen_random_uuid(),
  base_version uuid,
  created_by uuid,
  updated_by uuid,
  encounter_id uuid NOT NULL REFERENCES public.encounters (id) ON DELETE RESTRICT,
  eye public.eye NOT NULL,
  uncorrected_va text
    CONSTRAINT exam_eye_uncorrected_va_format CHECK (uncorrected_va ~ '^(20/[1-9][0-9]{0,3}([+-][1-4])?|CF|HM|LP|NLP)$'),
  uncorrected_va_logmar numeric(4, 2)
    CONSTRAINT exam_eye_uncorrected_va_logmar_range CHECK (uncorrected_va_logmar BETWEEN -0.3 AND 3),
  best_corrected_va text
    CONSTRAINT exam_eye_best_corrected_va_format
    CHECK (best_corrected_va ~ '^(20/[1-9][0-9]{0,3}([+-][1-4])?|CF|HM|LP|NLP)$'),
  best_corrected_va_logmar numeric(4, 2)
    CONSTRAINT exam_eye_best_corrected_va_logmar_range CHECK (best_corrected_va_logmar BETWEEN -0.3 AND 3),
  iop_mmhg numeric(4, 1) CONSTRAINT exam_eye_iop_mmhg_range CHECK (iop_mmhg BETWEEN 0 AND 80),
  iop_method public.iop_method,
  refraction_sphere numeric(5, 2) CONSTRAINT exam_eye_refraction_sphere_range
    CHECK (refraction_sphere BETWEEN -30 AND 30 AND mod(refraction_sphere, 0.25) = 0),
  refraction_cylinder numeric(5, 2) CONSTRAINT exam_eye_refraction_cylinder_range
    CHECK (refraction_cylinder BETWEEN -15 AND 15 AND mod(refraction_cylinder, 0.25) = 0),
  refraction_axis smallint CONSTRAINT exam_eye_refraction_axis_range CHECK (refraction_axis BETWEEN 0 AND 180),
  refraction_add numeric(4, 2) CONSTRAINT exam_eye_refraction_add_range
    CHECK (refraction_add BETWEEN 0 AND 4 AND mod(refraction_add, 0.25) = 0),
  pupil text CONSTRAINT exam_eye_pupil_not_blank CHECK (pupil ~ '\S'),
  anterior_segment text CONSTRAINT exam_eye_anterior_segment_not_blank CHECK (anterior_segment ~ '\S'),
  posterior_segment text CONSTRAINT exam_eye_posterior_segment_not_blank CHECK (posterior_segment ~ '\S'),
  CONSTRAINT exam_eye_encounter_id_eye_key UNIQUE (encounter_id, eye),
  -- A cylinder without an axis cannot be ground into a lens.
  CONSTRAINT exam_eye_axis_with_cylinder
    CHECK (refraction_cylinder IS NULL OR refraction_cylinder = 0 OR refraction_axis IS NOT NULL)
);

CREATE TABLE public.diagnoses (
  id uuid PRIMARY KEY,
  created_at timestamptz(3) NOT NULL DEFAULT now(),
  updated_at timestamptz(3) NOT NULL DEFAULT now(),
  version uuid NOT NULL DEFAULT gen_random_uuid(),
  base_version uuid,
  created_by uuid,
  updated_by uuid,
  encounter_id uuid NOT NULL REFERENCES public.encounters (id) ON DELETE RESTRICT,
  patient_id uuid NOT NULL REFERENCES public.patients (id) ON DELETE RESTRICT,
  -- ICD-10 (CIE-10): letter (U is reserved), two characters, optional subcategory: H40.1, H25.9.
  icd10_code text NOT NULL
    CONSTRAINT diagnoses_icd10_code_format CHECK (icd10_code ~ '^[A-TV-Z][0-9][0-9AB](\.[0-9A-TV-Z]{1,4})?$'),
  description text NOT NULL CONSTRAINT diagnoses_description_not_blank CHECK (description ~ '\S'),
  eye public.laterality,
  status public.diagnosis_status NOT NULL DEFAULT 'active',
  diagnosed_at timestamptz(3) NOT NULL
);
CREATE INDEX diagnoses_encounter_id_idx ON public.diagnoses (encounter_id);
CREATE INDEX diagnoses_patient_id_idx ON public.diagnoses (patient_id);

-- What `centrovision-sync cloud migrate` records: the project counts as having sql/0001_ehr_schema.sql.
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
insert into cv_meta.schema_migrations (name, checksum) values ('0001_ehr_schema.sql', '5e981b91298ac58ce0c99b3ddd9b733ea37addc301a053f2522905bcb6ce1cfe') on conflict (name) do nothing;
