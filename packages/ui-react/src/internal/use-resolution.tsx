import { useState } from "react";

/**
 * The state of one review: `submit` runs the reviewer's choice, marks the review busy meanwhile
 * and done after, and keeps the failure's message for `ResolutionOutcome`.
 */
export function useResolution<C>(
  run: (choice: C) => Promise<unknown>,
  onResolved: ((choice: C) => void) | undefined,
) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [done, setDone] = useState(false);

  const submit = async (choice: C) => {
    setBusy(true);
    setError(null);
    try {
      await run(choice);
      setDone(true);
      onResolved?.(choice);
    } catch (cause) {
      setError(cause instanceof Error ? cause.message : "error desconocido");
    } finally {
      setBusy(false);
    }
  };
  return { busy, error, done, submit };
}

/** What became of the reviewer's choice: the failure (`failed`, then the cause), in place, or `settled`. */
export function ResolutionOutcome(props: {
  error: string | null;
  done: boolean;
  failed: string;
  settled: string;
}) {
  const { error, done, failed, settled } = props;
  return (
    <>
      {error !== null && (
        <p role="alert" style={{ color: "#b91c1c" }}>
          {failed}: {error}
        </p>
      )}
      {done && <p role="status">{settled}</p>}
    </>
  );
}
