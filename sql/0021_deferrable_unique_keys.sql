-- 0021 The unique keys of the synced tables (not their ids) become DEFERRABLE INITIALLY IMMEDIATE.
--
-- A write still has them checked at once, at the end of its statement, with the same error
-- (23505) as before. The sync's apply (cv_sync.apply_changes, functions/03_sync_apply.sql) defers
-- them to the end of the page it writes. A page holds each row's last image only, so when one
-- transaction moved a key from one row to another (two patients' document numbers entered the
-- wrong way round and swapped, two rooms renamed in a round, OD and OS exchanged on an exam),
-- no order of writing those rows passes a check made after each one. Checked per row, the apply
-- took the swap for the same record registered twice (CV004), and the direction stopped for good:
-- nothing was wrong for a person to fix.
--
-- No ON CONFLICT names one of these keys (a deferrable key cannot arbitrate one): the adapters
-- upsert on the id, and the sync's statements insert plainly.

ALTER TABLE public.branches
  DROP CONSTRAINT branches_code_key,
  ADD CONSTRAINT branches_code_key UNIQUE (code) DEFERRABLE INITIALLY IMMEDIATE;
ALTER TABLE public.rooms
  DROP CONSTRAINT rooms_branch_id_name_key,
  ADD CONSTRAINT rooms_branch_id_name_key UNIQUE (branch_id, name) DEFERRABLE INITIALLY IMMEDIATE;
ALTER TABLE public.profiles
  DROP CONSTRAINT profiles_email_key,
  ADD CONSTRAINT profiles_email_key UNIQUE (email) DEFERRABLE INITIALLY IMMEDIATE;
ALTER TABLE public.user_roles
  DROP CONSTRAINT user_roles_user_id_role_key,
  ADD CONSTRAINT user_roles_user_id_role_key UNIQUE (user_id, role) DEFERRABLE INITIALLY IMMEDIATE;
ALTER TABLE public.user_branches
  DROP CONSTRAINT user_branches_user_id_branch_id_key,
  ADD CONSTRAINT user_branches_user_id_branch_id_key UNIQUE (user_id, branch_id) DEFERRABLE INITIALLY IMMEDIATE;
ALTER TABLE public.patients
  DROP CONSTRAINT patients_branch_id_document_id_key,
  ADD CONSTRAINT patients_branch_id_document_id_key UNIQUE (branch_id, document_id) DEFERRABLE INITIALLY IMMEDIATE;
ALTER TABLE public.exam_eye
  DROP CONSTRAINT exam_eye_encounter_id_eye_key,
  ADD CONSTRAINT exam_eye_encounter_id_eye_key UNIQUE (encounter_id, eye) DEFERRABLE INITIALLY IMMEDIATE;
