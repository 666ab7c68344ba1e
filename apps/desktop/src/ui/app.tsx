import { useCallback, useEffect, useState } from "react";
import { DevPanel } from "./dev-panel.js";
import { ErrorAlert } from "./error-alert.js";
import { errorText, invoke } from "./invoke.js";
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

  const signOut = async () => {
    try {
      setSession(await invoke<Session>("sign_out"));
    } catch (e) {
      setError(errorText(e));
    }
  };

  return (
    <div className="app">
      <ErrorAlert error={error} />
      {session?.signedIn === false && <SignIn onSignedIn={setSession} />}
      {session?.signedIn === true && <Workspace session={session} onSignOut={() => void signOut()} />}
      <DevPanel />
    </div>
  );
}
