import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// setup-server.sh's firewall step (deploy/postgresql-firewall.sh). nftables for real, in two
// network namespaces made here and joined by a veth pair: the "server" listens on PostgreSQL's port,
// the "client" connects from an address inside the clinic subnet and from one outside it. ufw and
// firewalld through stand-ins that record what they are told, as is the choice among them. Nothing
// here touches this machine's own network or firewall.
const deploy = (file: string) => fileURLToPath(new URL(`../deploy/${file}`, import.meta.url));
const FIREWALL = deploy("postgresql-firewall.sh");
const SETUP = deploy("setup-server.sh");

const sh = (command: string, args: string[], env: NodeJS.ProcessEnv = process.env) =>
  spawnSync(command, args, { encoding: "utf8", timeout: 60_000, env });
const output = (result: ReturnType<typeof sh>) => result.stdout + result.stderr;

/** nft, installed with apt-get when missing; the reason when network namespaces cannot be used here. */
function namespacesUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return "network namespaces are made as root only (CI runs as root)";
  if (sh("sh", ["-c", "command -v ip"]).status !== 0) return "ip (iproute2) is not installed";
  if (sh("sh", ["-c", "command -v nft"]).status !== 0) {
    const install = sh("apt-get", ["install", "-y", "-q", "-o", "DPkg::Lock::Timeout=120", "nftables"], {
      ...process.env,
      DEBIAN_FRONTEND: "noninteractive",
    });
    if (install.status !== 0) return "nft is not installed and apt-get install nftables failed";
  }
  return undefined;
}

const reason = namespacesUnavailable();
if (reason)
  console.warn(`[sync-daemon tests] the nftables firewall is not tried in a network namespace: ${reason}`);

describe.skipIf(reason !== undefined)("postgresql-firewall.sh with nftables, in network namespaces", () => {
  const id = randomBytes(3).toString("hex");
  const server = `cvfw${id}s`;
  const client = `cvfw${id}c`;
  let dir = "";
  let rules = "";
  let listener: ChildProcess | undefined;

  const inServer = (command: string, ...args: string[]) =>
    sh("ip", ["netns", "exec", server, command, ...args]);
  const ip = (...args: string[]) => {
    const result = sh("ip", args);
    expect(result.status, `ip ${args.join(" ")}: ${output(result)}`).toBe(0);
  };
  /** What a client at `from` meets at `to`:`port`: connected, or the error (a timeout means dropped). */
  const reach = (namespace: string, from: string, to: string, port: number) =>
    sh("ip", [
      "netns",
      "exec",
      namespace,
      process.execPath,
      "-e",
      `const s = require("node:net").connect({ host: "${to}", port: ${port}, localAddress: "${from}", timeout: 3000 });
       s.on("connect", () => { console.log("connected"); s.destroy(); });
       s.on("timeout", () => { console.log("timeout"); s.destroy(); });
       s.on("error", (e) => console.log(e.code));`,
    ]).stdout.trim();
  const firewall = (subnet: string) =>
    inServer("bash", FIREWALL, "--firewall", "nftables", "--rules-file", rules, subnet, "5432");

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "cv-firewall-"));
    rules = join(dir, "postgresql-firewall.nft");
    // The server at 10.77.0.1 (in the clinic subnet 10.77.0.0/24) and 10.78.0.1; the client at
    // 10.77.0.2 (a PC) and 10.78.0.2 (anything else on the wire).
    ip("netns", "add", server);
    ip("netns", "add", client);
    ip(
      "link",
      "add",
      `${server}v`,
      "netns",
      server,
      "type",
      "veth",
      "peer",
      "name",
      `${client}v`,
      "netns",
      client,
    );
    for (const [ns, host] of [
      [server, 1],
      [client, 2],
    ] as const) {
      ip("-n", ns, "addr", "add", `10.77.0.${host}/24`, "dev", `${ns}v`);
      ip("-n", ns, "addr", "add", `10.78.0.${host}/24`, "dev", `${ns}v`);
      ip("-n", ns, "link", "set", `${ns}v`, "up");
      ip("-n", ns, "link", "set", "lo", "up");
    }
    // PostgreSQL's port and another one, to see that only the first is restricted.
    listener = spawn("ip", [
      "netns",
      "exec",
      server,
      process.execPath,
      "-e",
      `const net = require("node:net");
       let open = 0;
       for (const port of [5432, 8080]) net.createServer((c) => c.end()).listen(port, "0.0.0.0", () => ++open === 2 && console.log("listening"));`,
    ]);
    await new Promise<void>((resolve, reject) => {
      listener?.stdout?.on("data", (chunk: Buffer) => chunk.toString().includes("listening") && resolve());
      listener?.on("exit", (code) => reject(new Error(`the listener exited (${code})`)));
    });
  }, 60_000);

  afterAll(() => {
    listener?.kill();
    for (const ns of [server, client]) sh("ip", ["netns", "del", ns]);
    rmSync(dir, { recursive: true, force: true });
  });

  it("before: anyone reaches the port (the test can tell the difference)", () => {
    expect(reach(client, "10.78.0.2", "10.78.0.1", 5432)).toBe("connected");
  });

  it("lets the clinic subnet and the server itself reach PostgreSQL's port, rejects anyone else at once, and says so", () => {
    const result = firewall("10.77.0.0/24");
    expect(result.status, output(result)).toBe(0);
    expect(result.stdout).toContain(`wrote ${rules}`);
    expect(result.stdout).toContain(`+ nft -f ${rules}`);
    expect(result.stdout).toContain(
      "firewall (nftables): port 5432/tcp accepts 10.77.0.0/24 and this machine only; any other client is rejected (table inet centrovision",
    );
    // No systemd in a test: it says the table lasts until a reboot, and how to load it at boot.
    expect(result.stdout).toContain(`load it at boot with: nft -f ${rules}`);
    expect(inServer("nft", "list", "table", "inet", "centrovision").stdout).toMatch(
      /tcp dport 5432 iif "lo" accept\n\s+tcp dport 5432 ip saddr 10\.77\.0\.0\/24 accept\n\s+tcp dport 5432 reject with icmpx admin-prohibited/,
    );

    expect(reach(client, "10.77.0.2", "10.77.0.1", 5432)).toBe("connected");
    expect(reach(server, "127.0.0.1", "127.0.0.1", 5432)).toBe("connected");
    // Rejected, not dropped: the client fails at once instead of waiting for a timeout.
    expect(reach(client, "10.78.0.2", "10.78.0.1", 5432)).toBe("EHOSTUNREACH");
    expect(reach(client, "10.78.0.2", "10.78.0.1", 8080)).toBe("connected");
  });

  it("run again, changes nothing; with another subnet, replaces the rules whole", () => {
    const before = inServer("nft", "list", "ruleset").stdout;
    const again = firewall("10.77.0.0/24");
    expect(again.status, output(again)).toBe(0);
    expect(again.stdout).toContain(`unchanged ${rules}`);
    expect(inServer("nft", "list", "ruleset").stdout).toBe(before);

    const moved = firewall("10.78.0.0/24");
    expect(moved.status, output(moved)).toBe(0);
    expect(readFileSync(rules, "utf8")).not.toContain("10.77.0.0/24");
    expect(reach(client, "10.78.0.2", "10.78.0.1", 5432)).toBe("connected");
    expect(reach(client, "10.77.0.2", "10.77.0.1", 5432)).not.toBe("connected");
    expect(inServer("nft", "list", "tables").stdout.trim()).toBe("table inet centrovision");
  });

  it("where systemd runs, loads the rules at boot with a unit systemd accepts", () => {
    // /run/systemd/system is how the script tells systemd runs: made in a mount namespace of its own.
    const dry = sh("unshare", [
      "--mount",
      "--propagation",
      "private",
      "--",
      "sh",
      "-c",
      'mount -t tmpfs cv-run /run && mkdir -p /run/systemd/system && exec bash "$@"',
      "sh",
      FIREWALL,
      "--dry-run",
      "--firewall",
      "nftables",
      "--rules-file",
      rules,
      "10.77.0.0/24",
      "5432",
    ]);
    expect(dry.status, output(dry)).toBe(0);
    expect(dry.stdout).toContain("would run: systemctl enable centrovision-firewall.service");
    const lines = dry.stdout.split("\n");
    const start = lines.indexOf("would write /etc/systemd/system/centrovision-firewall.service (mode 0644):");
    expect(start, dry.stdout).toBeGreaterThan(-1);
    const body: string[] = [];
    for (const line of lines.slice(start + 1)) {
      if (!line.startsWith("    ")) break;
      body.push(line.slice(4));
    }
    const text = `${body.join("\n")}\n`;
    const nft = sh("sh", ["-c", "command -v nft"]).stdout.trim();
    expect(text).toContain(`ExecStart=${nft} -f ${rules}\n`);
    expect(text).toContain("After=nftables.service\nPartOf=nftables.service\n");
    if (sh("sh", ["-c", "command -v systemd-analyze"]).status === 0) {
      writeFileSync(join(dir, "centrovision-firewall.service"), text);
      const verify = sh("systemd-analyze", ["verify", join(dir, "centrovision-firewall.service")]);
      expect(output(verify)).toBe("");
      expect(verify.status).toBe(0);
    }
  });
});

describe("postgresql-firewall.sh: which firewall, and what it is told", () => {
  let dir = "";
  let log = "";
  /** The script with the stand-ins in `dir` and /usr/bin, /bin: not the machine's nft, ufw or firewalld (sbin). */
  const run = (args: string[]) =>
    sh("bash", [FIREWALL, ...args], { PATH: `${dir}:/usr/bin:/bin`, LANG: "C.UTF-8" });
  const calls = () => readFileSync(log, "utf8").trim().split("\n");

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "cv-firewall-tools-"));
    log = join(dir, "calls");
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const tool = (name: string, body: string) =>
    writeFileSync(join(dir, name), `#!/bin/bash\necho "${name} $*" >>"${log}"\n${body}\n`, { mode: 0o755 });
  const reset = () => {
    rmSync(log, { force: true });
    for (const name of ["ufw", "firewall-cmd", "nft"]) rmSync(join(dir, name), { force: true });
  };

  it("ufw, when active: the subnet's allow first, a reject for the rest; warns about an allow from anywhere", () => {
    reset();
    tool(
      "ufw",
      `[[ $1 == status ]] && printf 'Status: active\\n\\nTo  Action  From\\n--  ------  ----\\n5432/tcp  ALLOW  Anywhere\\n5432/tcp  ALLOW  192.168.1.0/24  # centrovision\\n'; true`,
    );
    const result = run(["192.168.1.0/24", "5432"]);
    expect(result.status, output(result)).toBe(0);
    expect(calls().filter((call) => !call.startsWith("ufw status"))).toEqual([
      "ufw prepend allow proto tcp from 192.168.1.0/24 to any port 5432 comment centrovision: PostgreSQL from the clinic subnet",
      "ufw reject proto tcp to any port 5432 comment centrovision: PostgreSQL from anywhere else",
    ]);
    expect(result.stdout).toContain(
      "firewall (ufw): port 5432/tcp accepts 192.168.1.0/24 and this machine only; any other client is rejected",
    );
    expect(result.stderr).toContain(
      "warning: ufw also allows port 5432 from elsewhere: '5432/tcp  ALLOW  Anywhere'",
    );
    expect(result.stderr).not.toContain("192.168.1.0/24  #");
  });

  it("firewalld, when running: one rich rule in the default zone, added once", () => {
    reset();
    const rulesFile = join(dir, "rich-rules");
    rmSync(rulesFile, { force: true });
    tool(
      "firewall-cmd",
      `case "$*" in
  --state) echo running ;;
  --get-default-zone) echo public ;;
  *--query-rich-rule=*) grep -qxF -- "\${3#--query-rich-rule=}" "${rulesFile}" 2>/dev/null ;;
  *--add-rich-rule=*) echo "\${3#--add-rich-rule=}" >>"${rulesFile}" ;;
  *--query-service=*|*--query-port=*) exit 1 ;;
  *--get-target) echo default ;;
esac`,
    );
    const rule = 'rule family="ipv4" source address="10.0.0.0/16" port port="5433" protocol="tcp" accept';
    const first = run(["10.0.0.0/16", "5433"]);
    expect(first.status, output(first)).toBe(0);
    expect(calls()).toContain(`firewall-cmd --permanent --zone=public --add-rich-rule=${rule}`);
    expect(calls()).toContain("firewall-cmd --reload");
    expect(first.stdout).toContain("firewall (firewalld, zone public): port 5433/tcp accepts 10.0.0.0/16");
    rmSync(log);
    const again = run(["10.0.0.0/16", "5433"]);
    expect(again.status, output(again)).toBe(0);
    expect(again.stdout).toContain("firewalld: zone public already accepts 10.0.0.0/16 on port 5433/tcp");
    expect(calls().some((call) => call.includes("--add-rich-rule") || call.includes("--reload"))).toBe(false);
  });

  it("prefers an active ufw, then a running firewalld, then nft; with none, says PostgreSQL is guarded by pg_hba.conf alone", () => {
    reset();
    tool("nft", "true");
    tool("ufw", `[[ $1 == status ]] && echo "Status: inactive"; true`);
    const nft = run(["--dry-run", "192.168.1.0/24", "5432"]);
    expect(nft.stdout).toContain("would run: nft -f /etc/centrovision/postgresql-firewall.nft");
    expect(nft.stdout).toContain("would set the firewall (nftables): port 5432/tcp accepts 192.168.1.0/24");

    reset();
    const none = run(["192.168.1.0/24", "5432"]);
    expect(none.status, output(none)).toBe(0);
    expect(none.stdout).toBe(
      "firewall: none found (no active ufw, no running firewalld, no nft): PostgreSQL's port 5432 is guarded by pg_hba.conf alone; apt-get install nftables and run this again to add one\n",
    );
    const chosen = run(["--firewall", "nftables", "192.168.1.0/24", "5432"]);
    expect(chosen.status).toBe(2);
    expect(chosen.stderr).toContain("--firewall nftables: nft is not installed (apt-get install nftables)");
    const bad = run(["--firewall", "iptables", "192.168.1.0", "70000"]);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/SUBNET must be an IPv4 CIDR|--firewall must be/);
  });

  it("setup-server.sh runs it after pg_hba.conf with --subnet and --port, and leaves the host alone under --root", () => {
    reset();
    tool("ufw", `[[ $1 == status ]] && echo "Status: active"; true`);
    const anonKey = join(dir, "anon_key");
    writeFileSync(anonKey, "sb_publishable_firewall\n");
    const options = [
      "--dry-run",
      "--subnet",
      "192.168.10.0/24",
      "--server-address",
      "192.168.10.5",
      "--port",
      "5433",
      "--supabase-url",
      "https://abc.supabase.co",
      "--anon-key-file",
      anonKey,
      "--clinic-name",
      "Clínica Roma",
      "--all-branches",
      "--service-role-key-file",
      anonKey,
    ];
    const setup = (...extra: string[]) =>
      sh("bash", [SETUP, ...options, ...extra], { ...process.env, PATH: `${dir}:${process.env.PATH}` });
    const result = setup();
    expect(result.status, output(result)).toBe(0);
    const step = result.stdout.slice(
      result.stdout.indexOf("== Firewall"),
      result.stdout.indexOf("== Database"),
    );
    expect(step).toContain(
      "would run: ufw prepend allow proto tcp from 192.168.10.0/24 to any port 5433 comment centrovision: PostgreSQL from the clinic subnet",
    );
    expect(step).toContain("would set the firewall (ufw): port 5433/tcp accepts 192.168.10.0/24");
    expect(result.stdout.indexOf("pg_hba.conf")).toBeLessThan(result.stdout.indexOf("== Firewall"));

    const staged = setup("--root", dir);
    expect(staged.status, output(staged)).toBe(0);
    expect(staged.stdout).toContain("--root: the host firewall is left alone");
    expect(staged.stdout).not.toContain("ufw prepend");
    const none = setup("--firewall", "none");
    expect(none.stdout).toContain("firewall: left alone (--firewall none)");
  });
});
