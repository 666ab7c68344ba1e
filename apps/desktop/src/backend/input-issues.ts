import { CvError, type InputIssue } from "@centrovision/core";

/**
 * One issue per field (the first, the most basic problem), so the UI marks each field once; zod
 * can report several for one field.
 */
export function onePerField(issues: readonly InputIssue[]): InputIssue[] {
  const seen = new Set<string>();
  return issues.filter((issue) => !seen.has(issue.path) && seen.add(issue.path));
}

/** Every problem in one sentence: `campo: problema; otro: problema.` (messages that name their field as they are). */
export function describeIssues(issues: readonly InputIssue[]): string {
  const parts = issues.map((issue) => {
    const message = issue.message.replace(/\.+$/, "");
    return message.includes(":") ? message : `${issue.path}: ${message}`;
  });
  return `${[...new Set(parts)].join("; ")}.`;
}

/** `invalid_input` listing every problem, one issue per field with its path. */
export function invalidInput(issues: readonly InputIssue[]): CvError {
  const fields = onePerField(issues);
  return new CvError("invalid_input", describeIssues(fields), { issues: fields });
}
