/** A failure the person must see, read out by screen readers as it appears; nothing while `error` is null. */
export function ErrorAlert({ error, testId }: { error: string | null; testId?: string }) {
  if (error === null) return null;
  return (
    <p role="alert" className="error" data-testid={testId}>
      {error}
    </p>
  );
}
