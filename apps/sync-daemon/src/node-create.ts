import { randomBytes } from "node:crypto";
import { accessSync, chmodSync, constants, existsSync, writeFileSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import { CvError, type InputIssue, listIssues, zodIssues } from "@centrovision/core";
import * as z from "zod";
import { cloudSchema } from "./config/config-schema.js";
import { readConfigDocument, readSecretFile } from "./config/load-config.js";

/** What `node create` needs of the config: the cloud, and where the node's password goes. */
export interface NodeSetup {
  readonly cloudUrl: string;
  /** Absolute path of `[cloud] node_password_file`. */
  readonly passwordFile: string;
  /** `[cloud] node_email`, when the config has one already. */
  readonly nodeEmail?: string;
  readonly timeoutMs: number;
}

export interface NodeCredential {
  readonly userId: string;
  readonly email: string;
  readonly password: string;
}

/** The domain of node emails: `.invalid` never receives mail, so no message can reach anyone. */
export const NODE_EMAIL_DOMAIN = "nodes.centrovision.invalid";

const invalid = (issues: InputIssue[]): never => {
  throw new CvError("invalid_config", `[sync-daemon] node create: ${listIssues(issues)}`, { issues });
};

/**
 * Reads `[cloud]` of the config at `path` as `node create` needs it: `node_email` may be missing
 * (it is what the command makes) and the password file must not exist yet unless `force`.
 */
export function readNodeSetup(path: string, force: boolean): NodeSetup {
  const document = readConfigDocument(path) as Record<string, unknown> | null;
  const parsed = cloudSchema.partial({ node_email: true }).safeParse(document?.cloud);
  if (!parsed.success) invalid(zodIssues(parsed.error, "cloud", "unknown setting"));
  const cloud = parsed.data as z.output<typeof cloudSchema>;
  if (cloud.node_password_file === undefined) {
    invalid([
      {
        path: "cloud.node_password_file",
        message:
          'required: where node create writes the node\'s password, e.g. node_password_file = "secrets/node_password"',
      },
    ]);
  }
  const file = cloud.node_password_file as string;
  const passwordFile = isAbsolute(file) ? file : resolve(dirname(resolve(path)), file);
  // Checked before the cloud is asked: a credential made whose password cannot be kept is lost.
  try {
    accessSync(dirname(passwordFile), constants.W_OK);
  } catch (error) {
    invalid([
      {
        path: "cloud.node_password_file",
        message: `cannot write in ${dirname(passwordFile)} (${(error as NodeJS.ErrnoException).code}): create the folder (owner-only), run as its owner, or change the path`,
      },
    ]);
  }
  if (existsSync(passwordFile) && !force) {
    invalid([
      {
        path: "cloud.node_password_file",
        message: `${passwordFile} exists: this server has a node credential already; add --force to replace it with a new one`,
      },
    ]);
  }
  return {
    cloudUrl: cloud.url,
    passwordFile,
    timeoutMs: cloud.timeout_ms,
    ...(cloud.node_email !== undefined && { nodeEmail: cloud.node_email }),
  };
}

/** The service-role key from `--service-role-key-file` (owner-only, as every secret file). */
export function readServiceRoleKey(path: string): string {
  const issues: InputIssue[] = [];
  const key = readSecretFile(resolve(path), "--service-role-key-file", "service-role key", issues);
  if (issues.length > 0 || key === undefined) invalid(issues);
  return key as string;
}

/** `node-<clinic name in a-z0-9->-<random>`: readable in the Auth dashboard, never taken twice. */
export function nodeEmail(name: string): string {
  const slug = name
    .normalize("NFKD")
    .replace(/[\u0300-\u036f]/g, "")
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 40)
    .replace(/-+$/, "");
  return `node-${slug || "clinic"}-${randomBytes(4).toString("hex")}@${NODE_EMAIL_DOMAIN}`;
}

const authError = z.object({ error_code: z.string().optional(), code: z.unknown().optional() });
const postgrestError = z.object({ code: z.string().optional(), message: z.string().optional() });
const branchList = z.array(z.object({ id: z.string(), name: z.string() }));

/**
 * Creates the clinic server's node credential in the cloud: an Auth user (confirmed, with a
 * strong random password) through the admin API, registered as the node `name` with
 * cv_sync_register_node. The service key is used for these calls and kept nowhere. When the
 * registration fails, the user just made is deleted again. With `replace`, a name another user
 * holds moves to the new one (still bound to the same clinic server), and that user is deleted,
 * so the old password and its sessions stop working.
 */
export async function createNodeCredential(options: {
  cloudUrl: string;
  serviceRoleKey: string;
  name: string;
  /**
   * The clinic's branches, by name or id: its server holds only their rows (and what their staff
   * need). `"all"`: every branch, for an organisation with one clinic server.
   */
  branches: readonly string[] | "all";
  /** Give the name to the new user when another holds it (a lost or stolen password), deleting that one. */
  replace?: boolean;
  timeoutMs?: number;
}): Promise<NodeCredential> {
  const name = options.name.trim();
  const issues: InputIssue[] = [];
  if (name === "")
    issues.push({ path: "--name", message: 'required: the clinic\'s name, e.g. --name "Clínica Roma"' });
  const wanted = options.branches === "all" ? [] : options.branches.map((b) => b.trim());
  if (options.branches !== "all" && (wanted.length === 0 || wanted.includes(""))) {
    issues.push({
      path: "--branch",
      message:
        'required: each branch this clinic server holds, by name or id (e.g. --branch "Roma Norte" --branch "Roma Sur"), or --all-branches for a single server holding every branch',
    });
  }
  if (issues.length > 0) invalid(issues);
  const base = options.cloudUrl.replace(/\/+$/, "");
  const host = new URL(base).host;
  const timeoutMs = options.timeoutMs ?? 15_000;
  const send = async (method: string, path: string, body?: unknown) => {
    try {
      const response = await fetch(`${base}${path}`, {
        method,
        headers: {
          apikey: options.serviceRoleKey,
          authorization: `Bearer ${options.serviceRoleKey}`,
          "content-type": "application/json",
        },
        ...(body !== undefined && { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(timeoutMs),
      });
      const text = await response.text();
      return { status: response.status, json: text === "" ? null : (JSON.parse(text) as unknown) };
    } catch (error) {
      const cause = (error as { cause?: { code?: string } }).cause?.code ?? (error as Error).name;
      throw new CvError(
        "unavailable",
        `[sync-daemon] cannot reach cloud (${host}) (${cause}): check the internet connection and [cloud] url`,
        { cause: error },
      );
    }
  };
  const refusedKey = (status: number) =>
    new CvError(
      "unauthorized",
      `[sync-daemon] cloud (${host}) refused the service-role key (HTTP ${status}): copy it again from the Supabase dashboard (Settings → API, service_role) into the --service-role-key-file`,
    );

  let branchIds: string[] | null = null;
  if (options.branches !== "all") {
    const listed = await send("GET", "/rest/v1/branches?select=id,name&order=name");
    if (listed.status === 401 || listed.status === 403) throw refusedKey(listed.status);
    const known = branchList.safeParse(listed.json);
    if (listed.status !== 200 || !known.success) {
      throw new CvError(
        "unknown",
        `[sync-daemon] cloud (${host}) did not list its branches (HTTP ${listed.status}): install the current schema first (centrovision-sync cloud migrate)`,
      );
    }
    const fold = (text: string) => text.normalize("NFC").toLocaleLowerCase("es");
    const unknown: string[] = [];
    branchIds = wanted.map((value) => {
      const found = known.data.find((b) => b.id === value.toLowerCase() || fold(b.name) === fold(value));
      if (found === undefined) unknown.push(value);
      return found?.id ?? "";
    });
    if (unknown.length > 0) {
      invalid([
        {
          path: "--branch",
          message: `no branch ${unknown.map((u) => `"${u}"`).join(", ")} in the cloud; its branches are: ${known.data.map((b) => `"${b.name}"`).join(", ") || "none yet (create them first)"}`,
        },
      ]);
    }
  }

  const email = nodeEmail(name);
  const password = randomBytes(32).toString("base64url");
  const created = await send("POST", "/auth/v1/admin/users", {
    email,
    password,
    email_confirm: true,
    app_metadata: { centrovision_node: name },
  });
  if (created.status === 401 || created.status === 403) throw refusedKey(created.status);
  const userId = (created.json as { id?: unknown } | null)?.id;
  if (created.status !== 200 || typeof userId !== "string") {
    const code = authError.safeParse(created.json).data?.error_code ?? "no code";
    throw new CvError(
      "unknown",
      `[sync-daemon] cloud (${host}) did not create the node's user (HTTP ${created.status}, ${code})`,
    );
  }
  const registered = await send("POST", "/rest/v1/rpc/cv_sync_register_node", {
    p_user_id: userId,
    p_name: name,
    p_branch_ids: branchIds,
    p_replace: options.replace === true,
  });
  if (registered.status < 300) {
    const replaced = registered.json;
    if (typeof replaced === "string") {
      const gone = await send("DELETE", `/auth/v1/admin/users/${replaced}`);
      if (gone.status >= 300 && gone.status !== 404) {
        throw new CvError(
          "unknown",
          `[sync-daemon] the new credential is registered, but cloud (${host}) did not delete the replaced node user ${replaced} (HTTP ${gone.status}): delete it in the Supabase dashboard (Authentication → Users)`,
        );
      }
    }
    return { userId, email, password };
  }
  await send("DELETE", `/auth/v1/admin/users/${userId}`).catch(() => undefined);
  const error = postgrestError.safeParse(registered.json).data ?? {};
  if (registered.status === 401 || registered.status === 403) throw refusedKey(registered.status);
  if (error.code === "PGRST202") {
    throw new CvError(
      "invalid_config",
      `[sync-daemon] cloud (${host}) has no cv_sync_register_node: install the current schema first (centrovision-sync cloud migrate)`,
    );
  }
  if (error.code === "CV005" && /already registered/.test(error.message ?? "")) {
    throw new CvError(
      "conflict",
      `[sync-daemon] the clinic name "${name}" is already registered to another node: choose another --name, keep that clinic server's existing credential, or replace it with --force`,
    );
  }
  if (error.code === "CV005" && /cannot change them in place/.test(error.message ?? "")) {
    throw new CvError(
      "conflict",
      `[sync-daemon] the clinic "${name}" is registered with other branches, which cannot change in place (its server would miss the rows of an added branch): pass the same --branch list, or register the clinic server anew under another --name and re-sync it`,
    );
  }
  throw new CvError(
    "unknown",
    `[sync-daemon] cloud (${host}) did not register the node (HTTP ${registered.status}, ${error.code ?? "no code"})`,
  );
}

/** Writes the node's password owner-only (0600); `force` replaces an existing file. */
export function writePasswordFile(path: string, password: string, force: boolean): void {
  writeFileSync(path, `${password}\n`, { mode: 0o600, flag: force ? "w" : "wx" });
  chmodSync(path, 0o600);
}
