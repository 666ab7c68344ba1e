import { decodeJwt } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { authTools } from "./fixtures/supabase/auth-tools.js";
import { type Harness, startHarness } from "./fixtures/supabase/harness.js";

/*
 * Refresh-token rotation, reuse and theft as Supabase Auth answers them. Time passes by moving a
 * session's token history into the past, not by sleeping.
 */

let h: Harness;
/** Not the defaults (10 s, 3600 s), so the tests show the options are honoured. */
const REUSE_INTERVAL = 5;
const JWT_EXPIRY = 600;

beforeAll(async () => {
  h = await startHarness({ refreshTokenReuseIntervalSeconds: REUSE_INTERVAL, jwtExpirySeconds: JWT_EXPIRY });
});
afterAll(() => h?.stop());

const { appClient, signedIn, refresh } = authTools(() => h);

async function sessionTokens(sessionId: string) {
  return h.sql<{ token: string; parent: string | null; revoked: boolean }[]>`
    select token, parent, revoked from auth.refresh_tokens where session_id = ${sessionId} order by id`;
}

/** Moves a session's token history `seconds` into the past: the reuse interval passes without a sleep. */
async function age(sessionId: string, seconds: number) {
  await h.sql`
    update auth.refresh_tokens set updated_at = updated_at - make_interval(secs => ${seconds})
    where session_id = ${sessionId}`;
}

describe("refresh tokens", () => {
  it("rotates: a new token each time, the old one revoked and parent of the new", async () => {
    const { client, session } = await signedIn();
    const sessionId = decodeJwt(session.access_token).session_id as string;
    const { data, error } = await client.auth.refreshSession();
    expect(error).toBeNull();
    expect(data.session?.expires_in).toBe(JWT_EXPIRY);
    const next = data.session?.refresh_token;
    expect(next).toMatch(/^[a-z2-7]{12}$/);
    expect(next).not.toBe(session.refresh_token);
    expect(decodeJwt(data.session?.access_token ?? "").session_id).toBe(sessionId);
    expect(await sessionTokens(sessionId)).toEqual([
      { token: session.refresh_token, parent: null, revoked: true },
      { token: next, parent: session.refresh_token, revoked: false },
    ]);
  });

  it("gives a reused token, within the reuse interval, the session's current token", async () => {
    const { session } = await signedIn();
    const sessionId = decodeJwt(session.access_token).session_id as string;
    const first = await refresh(session.refresh_token);
    const again = await refresh(session.refresh_token);
    expect([first.status, again.status]).toEqual([200, 200]);
    // The parent of the active token gets that token back: the client lost the first answer.
    expect(again.body.refresh_token).toBe(first.body.refresh_token);
    await age(sessionId, REUSE_INTERVAL - 1);
    const second = await refresh(first.body.refresh_token as string);
    // An older token still within the interval is accepted too (and gets a child), as in GoTrue.
    const older = await refresh(session.refresh_token);
    expect([second.status, older.status]).toEqual([200, 200]);
  });

  /** Signs in, refreshes twice, lets the interval pass, then reuses the first token (theft). */
  async function reuseAfterInterval() {
    const { session } = await signedIn();
    const sessionId = decodeJwt(session.access_token).session_id as string;
    const first = await refresh(session.refresh_token);
    const newest = await refresh(first.body.refresh_token as string);
    await age(sessionId, REUSE_INTERVAL + 1);
    const stolen = await refresh(session.refresh_token);
    return { sessionId, newest: newest.body.refresh_token as string, stolen };
  }

  it("treats reuse after the interval as theft: the whole session's tokens are revoked", async () => {
    const { sessionId, newest, stolen } = await reuseAfterInterval();
    expect([stolen.status, stolen.body]).toEqual([
      400,
      { code: "refresh_token_already_used", message: "Invalid Refresh Token: Already Used" },
    ]);
    expect((await sessionTokens(sessionId)).every((row) => row.revoked)).toBe(true);
    await age(sessionId, REUSE_INTERVAL + 1);
    const { error } = await appClient().auth.refreshSession({ refresh_token: newest });
    expect([error?.status, error?.code]).toEqual([400, "refresh_token_already_used"]);
  });

  it("like GoTrue, lets the newest token of a revoked session refresh within the interval of its revocation", async () => {
    const { newest, stolen } = await reuseAfterInterval();
    expect(stolen.status).toBe(400);
    // RevokeTokenFamily stamps updated_at = now(), which restarts the newest token's interval.
    expect((await refresh(newest)).status).toBe(200);
  });

  it("lets concurrent refreshes of one token all succeed with a single active child", async () => {
    const { session } = await signedIn();
    const sessionId = decodeJwt(session.access_token).session_id as string;
    const answers = await Promise.all(Array.from({ length: 4 }, () => refresh(session.refresh_token)));
    expect(answers.map((answer) => answer.status)).toEqual([200, 200, 200, 200]);
    const issued = new Set(answers.map((answer) => answer.body.refresh_token));
    expect(issued.size).toBe(1);
    const active = (await sessionTokens(sessionId)).filter((row) => !row.revoked);
    expect(active).toEqual([{ token: [...issued][0], parent: session.refresh_token, revoked: false }]);
  });

  it("answers an unknown or malformed token as GoTrue does", async () => {
    const unknown = await refresh("abcdefghijkl");
    expect([unknown.status, unknown.body]).toEqual([
      400,
      { code: "refresh_token_not_found", message: "Invalid Refresh Token: Refresh Token Not Found" },
    ]);
    const malformed = await refresh("short");
    expect([malformed.status, malformed.body.code]).toEqual([400, "validation_failed"]);
  });

  it("refuses a banned user's refresh with user_banned", async () => {
    const { id, session } = await signedIn();
    await h.service.auth.admin.updateUserById(id, { ban_duration: "1h" });
    const banned = await refresh(session.refresh_token);
    expect([banned.status, banned.body]).toEqual([
      400,
      { code: "user_banned", message: "Invalid Refresh Token: User Banned" },
    ]);
  });
});
