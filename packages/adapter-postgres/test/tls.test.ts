import { execFileSync } from "node:child_process";
import { chown, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type PostgresServer, startPostgres } from "@centrovision/testkit";
import { timed } from "@centrovision/testkit/contract";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPostgresSource, type PostgresConfigInput } from "../src/index.js";

// A real TLS handshake against a PostgreSQL with ssl=on, certificates made for this run by the
// openssl CLI (no key is kept in the repository). No openssl means a failed run, not a skip.
let dir: string;
let server: PostgresServer;

function openssl(command: string, ...extra: string[]): void {
  execFileSync("openssl", [...command.split(" "), ...extra], { cwd: dir, stdio: "pipe" });
}

/** Two CAs, and a server certificate the first one signed for the IP the server listens on. */
function makeCertificates(): void {
  const ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
  for (const ca of ["ca", "other-ca"]) {
    openssl(
      `req -x509 ${ec} -keyout ${ca}.key -out ${ca}.pem -days 30`,
      "-subj",
      `/CN=CentroVision test ${ca}`,
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
    );
  }
  openssl(`req ${ec} -keyout server.key -out server.csr`, "-subj", "/CN=clinic server");
  openssl(
    "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 30 -extfile san.cnf",
  );
}

/** PostgreSQL refuses a key others can read; as root it runs as the `postgres` user, who must own it. */
async function handKeyToServer(): Promise<void> {
  if (process.getuid?.() !== 0) return;
  const id = (flag: string) => Number(execFileSync("id", [flag, "postgres"], { encoding: "utf8" }).trim());
  for (const file of ["server.key", "server.pem"]) await chown(join(dir, file), id("-u"), id("-g"));
  await chown(dir, id("-u"), id("-g"));
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "cv-pg-tls-"));
  await writeFile(join(dir, "san.cnf"), "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n");
  makeCertificates();
  await handKeyToServer();
  server = await startPostgres({
    settings: { ssl: "on", ssl_cert_file: join(dir, "server.pem"), ssl_key_file: join(dir, "server.key") },
  });
}, 120_000);

afterAll(async () => {
  await server?.stop();
  await rm(dir, { recursive: true, force: true });
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
    const attempt = await probeWith({ ssl: { mode: "verify-full", caFile: join(dir, "ca.pem") } });
    expect(attempt.error).toBeUndefined();
  });

  it("verify-full with another CA refuses the server: unavailable, saying why", async () => {
    const attempt = await probeWith({ ssl: { mode: "verify-full", caFile: join(dir, "other-ca.pem") } });
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
