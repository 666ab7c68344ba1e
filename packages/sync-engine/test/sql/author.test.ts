import { asClinicPerson } from "@centrovision/testkit";
import {
  clinicPerson,
  consultation,
  createNode,
  ensureLogin,
  insertConsultation,
  type SqlNode,
  withLogin,
} from "@centrovision/testkit/nodes";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sync } from "../support/sql-sync.js";

/*
 * Every change carries its author (issue 13): who made it, how they signed in, their session, the
 * device and the node, recorded when it is made and carried unchanged to every node it reaches.
 */

const PC = { user: "cv_author_pc", password: "author-pc-test-password" };
let clinicNode: SqlNode;
let cloud: SqlNode;
beforeAll(async () => {
  [clinicNode, cloud] = await Promise.all([createNode("author_clinic"), createNode("author_cloud")]);
});
afterAll(async () => {
  await Promise.all([clinicNode?.drop(), cloud?.drop()]);
});

const authorOf = async (node: SqlNode, rowId: string) =>
  (
    await node.sql<{ author: Record<string, string> | null; received_from: string | null }[]>`
      select author, received_from from cv_sync.change_log where row_id = ${rowId} order by seq desc limit 1`
  )[0];

describe("the author of a change", () => {
  it("is the signed-in person at their PC on this node, and reaches the other node unchanged", async () => {
    const rows = consultation();
    await insertConsultation(clinicNode.sql, rows);
    const person = await clinicPerson(clinicNode, { branches: [rows.branches.id] });
    const pc = postgres(withLogin(clinicNode.url, await ensureLogin(PC, "centrovision_app")), {
      max: 1,
      onnotice: () => {},
      connection: asClinicPerson(person.token),
    });
    try {
      await pc`update patients set phone = '55 9999 0000' where id = ${rows.patients.id}`;
    } finally {
      await pc.end();
    }
    const [sid] = await clinicNode.sql<{ sid: string }[]>`
      select claims ->> 'sid' as sid from cv_auth.verified_sessions
      where token_hash = sha256(convert_to(${person.token}, 'UTF8'))`;
    const expected = {
      user: person.userId,
      sign_in: "online",
      session: sid?.sid,
      device: PC.user,
      node: clinicNode.id,
    };
    expect(await authorOf(clinicNode, rows.patients.id)).toEqual({ author: expected, received_from: null });

    await sync(clinicNode, cloud);
    expect(await authorOf(cloud, rows.patients.id)).toEqual({
      author: expected,
      received_from: clinicNode.id,
    });
  });

  it("is nobody for a write no signed-in person made (the owner, a migration)", async () => {
    const rows = consultation();
    await insertConsultation(clinicNode.sql, rows);
    expect(await authorOf(clinicNode, rows.patients.id)).toEqual({ author: null, received_from: null });
  });
});
