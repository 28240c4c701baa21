// Sign in with e-mail and password.

import { type FormEvent, useState } from "react";
import { Link, useLocation, useNavigate } from "react-router";
import { authClient } from "../api/client";
import { fieldError, toUiError, type UiError } from "../api/errors";
import { setSession } from "../auth/session";
import { ErrorBanner } from "../components/ErrorBanner";
import { Field } from "../components/Field";
import { useTitle } from "../lib/useTitle";

/** Where to go after signing in: the page that sent the user here, else home. */
export function useReturnTo(): string {
  const location = useLocation();
  const from = (location.state as { from?: unknown } | null)?.from;
  return typeof from === "string" && from.startsWith("/") ? from : "/";
}

export function LoginPage() {
  useTitle("Sign in");
  const navigate = useNavigate();
  const returnTo = useReturnTo();
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<UiError | null>(null);
  const [busy, setBusy] = useState(false);

  const onSubmit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const response = await authClient.login({ email, password });
      if (!response.tokens) throw new Error("the login response has no tokens");
      setSession(response.tokens, response.account);
      navigate(returnTo, { replace: true });
    } catch (thrown) {
      setError(toUiError(thrown));
      setBusy(false);
    }
  };

  return (
    <section className="page narrow">
      <h1>Sign in</h1>
      <ErrorBanner error={error} title="Could not sign in" shownFields={["email", "password"]} />
      <form onSubmit={onSubmit} noValidate data-testid="login-form">
        <Field
          label="E-mail"
          name="email"
          type="email"
          autoComplete="email"
          required
          value={email}
          onChange={(e) => setEmail(e.target.value)}
          error={fieldError(error, "email")}
        />
        <Field
          label="Password"
          name="password"
          type="password"
          autoComplete="current-password"
          required
          value={password}
          onChange={(e) => setPassword(e.target.value)}
          error={fieldError(error, "password")}
        />
        <button type="submit" disabled={busy}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
      </form>
      <p>
        New here? <Link to="/register">Create an account</Link>
      </p>
    </section>
  );
}
