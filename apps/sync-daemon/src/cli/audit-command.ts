import { CvError } from "@centrovision/core";
import type { AuditEvent, AuditQuery } from "@centrovision/sync-engine";
import type { Command } from "commander";
import type { DaemonConfig } from "../config/load-config.js";
import { EXIT_SYNC_FAILURE } from "../exit-codes.js";
import { withClinic } from "./conflicts-command.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function line(event: AuditEvent): string {
  const author = event.author
    ? `user=${event.author.user} ${event.author.sign_in ?? "-"} ${event.author.device ?? "-"}`
    : "user=-";
  return [
    event.at,
    event.action.padEnd(6),
    event.table.padEnd(12),
    event.rowId,
    `patient=${event.patientId ?? "-"}`,
    author,
    event.position === null ? "unsealed" : `#${event.position}`,
  ].join("  ");
}

/** Checks the options of `audit list` and turns them into a query; every problem in one message. */
function queryOf(options: {
  patient?: string;
  user?: string;
  since?: string;
  until?: string;
  limit: string;
}) {
  const problems: string[] = [];
  for (const [flag, value] of [
    ["--patient", options.patient],
    ["--user", options.user],
  ] as const) {
    if (value !== undefined && !UUID.test(value)) problems.push(`${flag} must be a uuid, got "${value}"`);
  }
  for (const [flag, value] of [
    ["--since", options.since],
    ["--until", options.until],
  ] as const) {
    if (value !== undefined && Number.isNaN(Date.parse(value)))
      problems.push(`${flag} must be a date or time, e.g. 2026-12-01 or 2026-12-01T08:00:00-06:00`);
  }
  const limit = Number(options.limit);
  if (!Number.isInteger(limit) || limit < 1) problems.push("--limit must be a positive integer");
  if (problems.length > 0) throw new CvError("invalid_input", `[sync-daemon] ${problems.join("; ")}`);
  const query: AuditQuery = {
    limit,
    ...(options.patient !== undefined && { patientId: options.patient }),
    ...(options.user !== undefined && { userId: options.user }),
    ...(options.since !== undefined && { from: new Date(options.since).toISOString() }),
    ...(options.until !== undefined && { to: new Date(options.until).toISOString() }),
  };
  return query;
}

/**
 * `audit list|verify`: the clinic server's audit trail (sql/0012). Events name rows by id and
 * people by user id: no patient data is printed.
 */
export function addAuditCommand(
  program: Command,
  load: () => DaemonConfig,
  print: (text: string) => void,
): void {
  const audit = program
    .command("audit")
    .description("the clinic server's audit trail: who did what to which record, and who opened it");
  audit
    .command("list")
    .description("events by patient, user and time: the latest --limit matching, oldest first")
    .option("--patient <id>", "the events about this patient")
    .option("--user <id>", "the events of this user")
    .option("--since <time>", "from this date or time on")
    .option("--until <time>", "before this date or time")
    .option("--limit <n>", "at most this many", "100")
    .option("--json", "machine-readable output")
    .action(
      async (options: {
        patient?: string;
        user?: string;
        since?: string;
        until?: string;
        limit: string;
        json?: boolean;
      }) => {
        const query = queryOf(options);
        const events = await withClinic(load, (peer) => peer.auditEvents(query));
        if (options.json) return print(JSON.stringify(events));
        print(events.length === 0 ? "no audit events" : events.map(line).join("\n"));
      },
    );
  audit
    .command("verify")
    .description("seal what is committed, then recompute the chain: an edited or missing event breaks it")
    .option("--json", "machine-readable output")
    .action(async (options: { json?: boolean }) => {
      const verification = await withClinic(load, async (peer) => {
        await peer.sealAudit();
        return peer.verifyAudit();
      });
      if (!verification.ok) process.exitCode = EXIT_SYNC_FAILURE;
      if (options.json) return print(JSON.stringify(verification));
      print(
        verification.ok
          ? `audit trail intact: ${verification.events} event(s), ${verification.sealed} verified in the chain (head #${verification.head}), ${verification.unsealed} not yet sealed`
          : `audit trail BROKEN at position ${verification.brokenAt}: an event there was changed or removed; keep this database for investigation and tell the clinic's administrator`,
      );
    });
}
