import { type PostgresServer, startPostgres } from "@centrovision/testkit";
import { timed } from "@centrovision/testkit/contract";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPostgresSource, type PostgresConfigInput } from "../src/index.js";

// A real TLS handshake against a PostgreSQL with ssl=on, its certificates made for this run by the
// openssl CLI (testkit's `tls`). No openssl means a failed run, not a skip.
let server: PostgresServer;
let tls: NonNullable<PostgresServer["tls"]>;

beforeAll(async () => {
  server = await startPostgres({ tls: true });
  tls = server.tls as NonNullable<PostgresServer["tls"]>;
}, 120_000);

afterAll(async () => {
  await server?.stop();
});

async function probeWith(config: Partial<PostgresConfigInput>) {
  const source = createPostgresSource({
    url: server.url,
    connectTimeoutMs: 2_000,
    ...config,
  } as PostgresConfigInput);
  try {
    return await timed(source.probe({ timeoutMs: 3_000 }));
  } finally {
    await source.close();
  }
}

describe("TLS", () => {
  it("verify-full with the CA that signed the server certificate connects (server addressed by IP)", async () => {
    const attempt = await probeWith({ ssl: { mode: "verify-full", caFile: tls.caFile } });
    expect(attempt.error).toBeUndefined();
  });

  it("verify-full with another CA refuses the server: unavailable, saying why", async () => {
    const attempt = await probeWith({ ssl: { mode: "verify-full", caFile: tls.otherCaFile } });
    expect(attempt.error?.code).toBe("unavailable");
    expect(attempt.error?.message).toMatch(/TLS certificate failed verification \(\w+\)/);
  });

  it("verify-full without a CA file trusts only the system store, which did not sign a test CA", async () => {
    const attempt = await probeWith({ ssl: { mode: "verify-full" } });
    expect(attempt.error?.code).toBe("unavailable");
  });

  it("require encrypts without verifying", async () => {
    expect((await probeWith({ ssl: { mode: "require" } })).error).toBeUndefined();
  });
});
