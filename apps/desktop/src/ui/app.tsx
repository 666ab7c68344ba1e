import { useCallback, useEffect, useState } from "react";
import { DevPanel } from "./dev-panel.js";
import { ErrorAlert } from "./error-alert.js";
import { errorCode, errorText, invoke } from "./invoke.js";
import { SignIn } from "./sign-in.js";
import type { Session } from "./types.js";
import { Workspace } from "./workspace.js";

/**
 * The sign-in screen until someone is signed in, then the workspace. The session is re-read every
 * few seconds: it can end without this screen doing anything (the cloud refused to renew it, an
 * offline sign-in ran out), and the cloud can come back after an offline sign-in.
 */
export function App() {
  const [session, setSession] = useState<Session | null>(null);
  const [error, setError] = useState<string | null>(null);

  const read = useCallback(async () => {
    try {
      setSession(await invoke<Session>("get_session"));
      setError(null);
    } catch (e) {
      setError(errorText(e));
    }
  }, []);
  useEffect(() => {
    void read();
    const timer = setInterval(() => void read(), 3_000);
    return () => clearInterval(timer);
  }, [read]);

  /**
   * Why signing out was held (this person's writes on this PC that no server has yet), and for
   * whom: shown only to them, not to the next person if their session ended by itself meanwhile.
   */
  const [unsent, setUnsent] = useState<{ person: string; message: string } | null>(null);
  const person = session?.signedIn === true ? session.user.id : null;
  // Once the session ends, however it ended, the question is gone: a sign-in again starts afresh.
  useEffect(() => {
    if (person === null) setUnsent(null);
  }, [person]);
  const signOut = async (leaveUnsent: boolean) => {
    try {
      setSession(await invoke<Session>("sign_out", leaveUnsent ? { leave_unsent: true } : {}));
      setUnsent(null);
    } catch (e) {
      if (errorCode(e) === "conflict" && person !== null) setUnsent({ person, message: errorText(e) });
      else setError(errorText(e));
    }
  };

  return (
    <div className="app">
      <ErrorAlert error={error} />
      {person !== null && unsent?.person === person && (
        <div role="alert" className="overlap" data-testid="sign-out-unsent">
          <p>{unsent.message}</p>
          <button type="button" className="primary" onClick={() => setUnsent(null)}>
            Seguir en la sesión
          </button>{" "}
          <button type="button" onClick={() => void signOut(true)}>
            Cerrar sesión de todos modos
          </button>
        </div>
      )}
      {session?.signedIn === false && <SignIn onSignedIn={setSession} />}
      {session?.signedIn === true && (
        <Workspace session={session} onSignOut={(leaveUnsent) => void signOut(leaveUnsent)} />
      )}
      <DevPanel />
    </div>
  );
}
