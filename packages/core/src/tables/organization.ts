import * as z from "zod";
import { email, patterned, phone, text, uuid } from "./columns.js";
import { defineTable } from "./define-table.js";
import { ROOM_KINDS, STAFF_ROLES } from "./enums.js";

/** A clinic location. `timezone` is where its appointments happen, for agendas and reports. */
export const branches = defineTable({
  name: "branches",
  columns: {
    code: patterned(/^[A-Z0-9][A-Z0-9-]{1,15}$/, "must be 2–16 uppercase letters, digits or dashes"),
    name: text(),
    address: text(),
    phone: phone().nullable(),
    timezone: patterned(/^(UTC|[A-Za-z]+(\/[A-Za-z0-9_+-]+)+)$/, "must be an IANA time zone"),
    active: z.boolean(),
  },
  defaults: { timezone: "America/Mexico_City", active: true },
  uniques: [["code"]],
});

/** A consulting room, diagnostics lane, procedure room or operating room of a branch. */
export const rooms = defineTable({
  name: "rooms",
  columns: {
    branch_id: uuid(),
    name: text(),
    kind: z.enum(ROOM_KINDS),
    active: z.boolean(),
  },
  defaults: { active: true },
  foreignKeys: [{ column: "branch_id", references: "branches", onDelete: "restrict" }],
  uniques: [["branch_id", "name"]],
});

/**
 * A staff member. `id` is the Supabase auth user id; there is no foreign key to `auth.users`
 * because that table exists only in the cloud. Staff who leave are deactivated, not deleted,
 * since clinical records keep pointing at them.
 */
export const profiles = defineTable({
  name: "profiles",
  columns: {
    full_name: text(),
    email: email().nullable(),
    /** Cédula profesional or equivalent, for prescriptions and signed records. */
    professional_license: text().nullable(),
    active: z.boolean(),
  },
  defaults: { active: true },
  uniques: [["email"]],
});

/** A role held by a user; a user may hold several. */
export const user_roles = defineTable({
  name: "user_roles",
  columns: {
    user_id: uuid(),
    role: z.enum(STAFF_ROLES),
  },
  foreignKeys: [{ column: "user_id", references: "profiles", onDelete: "cascade" }],
  uniques: [["user_id", "role"]],
});

/** Membership of a user in a branch; row-level security on Supabase is derived from it. */
export const user_branches = defineTable({
  name: "user_branches",
  columns: {
    user_id: uuid(),
    branch_id: uuid(),
  },
  foreignKeys: [
    { column: "user_id", references: "profiles", onDelete: "cascade" },
    { column: "branch_id", references: "branches", onDelete: "cascade" },
  ],
  uniques: [["user_id", "branch_id"]],
});
