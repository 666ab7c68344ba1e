import pino, { type Logger } from "pino";

export type { Logger } from "pino";

/**
 * Paths pino blanks before a line is written: keys, passwords, tokens and URLs (a URL may carry
 * credentials), wherever a caller puts them. Row data is never logged in the first place.
 */
export const REDACT_PATHS = [
  "password",
  "*.password",
  "key",
  "*.key",
  "serviceRoleKey",
  "*.serviceRoleKey",
  "nodePassword",
  "*.nodePassword",
  "token",
  "*.token",
  "access_token",
  "*.access_token",
  "refresh_token",
  "*.refresh_token",
  "authorization",
  "*.authorization",
  "url",
  "*.url",
  "adminUrl",
  "*.adminUrl",
];

/** JSON lines on stderr (journald keeps them; stdout stays free for command output). */
export function createLogger(level = "info"): Logger {
  return pino(
    { name: "centrovision-sync", level, redact: { paths: REDACT_PATHS, censor: "[redacted]" } },
    pino.destination({ fd: 2, sync: true }),
  );
}
