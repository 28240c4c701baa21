// Create an account (and sign in with it).

import { type FormEvent, useState } from "react";
import { Link, useNavigate } from "react-router";
import { authClient } from "../api/client";
import { fieldError, toUiError, type UiError } from "../api/errors";
import { setSession } from "../auth/session";
import { ErrorBanner } from "../components/ErrorBanner";
import { Field } from "../components/Field";
import { useTitle } from "../lib/useTitle";
import { useReturnTo } from "./Login";

export function RegisterPage() {
  useTitle("Create account");
  const navigate = useNavigate();
  const returnTo = useReturnTo();
  const [form, setForm] = useState({ email: "", password: "", displayName: "" });
  const [error, setError] = useState<UiError | null>(null);
  const [busy, setBusy] = useState(false);

  const onSubmit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const response = await authClient.register(form);
      if (!response.tokens) throw new Error("the register response has no tokens");
      setSession(response.tokens, response.account);
      navigate(returnTo === "/" ? "/account" : returnTo, { replace: true });
    } catch (thrown) {
      setError(toUiError(thrown));
      setBusy(false);
    }
  };

  const set = (name: keyof typeof form) => (e: { target: { value: string } }) =>
    setForm((f) => ({ ...f, [name]: e.target.value }));

  return (
    <section className="page narrow">
      <h1>Create an account</h1>
      <ErrorBanner
        error={error}
        title="Could not create the account"
        shownFields={["email", "password", "display_name"]}
      />
      <form onSubmit={onSubmit} noValidate data-testid="register-form">
        <Field
          label="E-mail"
          name="email"
          type="email"
          autoComplete="email"
          required
          maxLength={254}
          value={form.email}
          onChange={set("email")}
          error={fieldError(error, "email")}
        />
        <Field
          label="Password"
          name="password"
          type="password"
          autoComplete="new-password"
          required
          hint="8 to 128 characters."
          value={form.password}
          onChange={set("password")}
          error={fieldError(error, "password")}
        />
        <Field
          label="Display name"
          name="display_name"
          autoComplete="nickname"
          maxLength={100}
          hint="Optional; how other people see you."
          value={form.displayName}
          onChange={set("displayName")}
          error={fieldError(error, "display_name")}
        />
        <button type="submit" disabled={busy}>
          {busy ? "Creating…" : "Create account"}
        </button>
      </form>
      <p>
        Already have an account? <Link to="/login">Sign in</Link>
      </p>
    </section>
  );
}
