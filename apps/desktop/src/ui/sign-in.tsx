import { type FormEvent, useState } from "react";
import { errorText, invoke } from "./invoke.js";
import type { Session } from "./types.js";

interface SignInProps {
  onSignedIn: (session: Session) => void;
}

/** The first screen: the clinic's Supabase account (email and password), online or, without a cloud, on this PC. */
export function SignIn({ onSignedIn }: SignInProps) {
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [working, setWorking] = useState(false);
  const [error, setError] = useState<string | null>(null);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setWorking(true);
    setError(null);
    try {
      const session = await invoke<Session>("sign_in", { email, password });
      setPassword("");
      onSignedIn(session);
    } catch (e) {
      setError(errorText(e));
    } finally {
      setWorking(false);
    }
  };

  const describedBy = error === null ? undefined : "sign-in-error";
  return (
    <main className="sign-in">
      <h1>CentroVision</h1>
      <form
        className="form card"
        aria-labelledby="sign-in-title"
        data-testid="sign-in-form"
        onSubmit={(e) => void submit(e)}
      >
        <h2 id="sign-in-title">Iniciar sesión</h2>
        <label>
          Correo electrónico
          <input
            type="email"
            autoComplete="username"
            required
            value={email}
            onChange={(e) => setEmail(e.target.value)}
            aria-invalid={error !== null}
            aria-describedby={describedBy}
          />
        </label>
        <label>
          Contraseña
          <input
            type="password"
            autoComplete="current-password"
            required
            value={password}
            onChange={(e) => setPassword(e.target.value)}
            aria-invalid={error !== null}
            aria-describedby={describedBy}
          />
        </label>
        {error !== null && (
          <p id="sign-in-error" role="alert" className="error">
            {error}
          </p>
        )}
        <button type="submit" disabled={working} aria-busy={working}>
          Iniciar sesión
        </button>
      </form>
    </main>
  );
}
