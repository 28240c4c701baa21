// The caller's account: profile and shipping address, each with the server's validation shown
// next to its fields.

import { type FormEvent, useEffect, useState } from "react";
import { Code } from "@connectrpc/connect";
import { accountClient } from "../api/client";
import { fieldError, toUiError, type UiError } from "../api/errors";
import { setSessionLabel } from "../auth/session";
import {
  ADDRESS_FIELDS,
  type AddressForm,
  AddressFields,
  EMPTY_ADDRESS,
  fromAddress,
} from "../components/AddressFields";
import { ErrorBanner } from "../components/ErrorBanner";
import { Field } from "../components/Field";
import { Loading, Notice } from "../components/Status";
import { Role } from "../gen/mercato/common/v1/identity_pb";
import { useCall } from "../lib/useCall";
import { useTitle } from "../lib/useTitle";

export function AccountPage() {
  useTitle("Your account");
  return (
    <div className="page">
      <h1>Your account</h1>
      <div className="two-columns">
        <ProfileSection />
        <AddressSection />
      </div>
    </div>
  );
}

function ProfileSection() {
  const account = useCall((signal) => accountClient.getAccount({}, { signal }), []);
  const [form, setForm] = useState({ displayName: "", description: "" });
  const [error, setError] = useState<UiError | null>(null);
  const [saved, setSaved] = useState(false);
  const [busy, setBusy] = useState(false);
  const current = account.data?.account;

  useEffect(() => {
    if (current) setForm({ displayName: current.displayName, description: current.description });
  }, [current]);

  const onSubmit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    setSaved(false);
    try {
      const response = await accountClient.updateAccount({
        displayName: form.displayName,
        description: form.description,
        updateMask: { paths: ["display_name", "description"] },
      });
      account.setData({ ...account.data!, account: response.account });
      setSessionLabel(response.account?.displayName ?? "");
      setSaved(true);
    } catch (thrown) {
      setError(toUiError(thrown));
    } finally {
      setBusy(false);
    }
  };

  return (
    <section aria-labelledby="profile-heading" className="panel">
      <h2 id="profile-heading">Profile</h2>
      {account.loading ? (
        <Loading label="Loading your profile…" />
      ) : account.error ? (
        <ErrorBanner error={account.error} title="Your profile could not be loaded" />
      ) : (
        <>
          <p className="muted" data-testid="account-email">
            {current?.email}
            {current?.roles.length
              ? ` · ${current.roles.map((r) => (Role[r] ?? "").toLowerCase()).filter(Boolean).join(", ")}`
              : ""}
          </p>
          {saved && <Notice>Profile saved.</Notice>}
          <ErrorBanner
            error={error}
            title="Could not save the profile"
            shownFields={["display_name", "description"]}
          />
          <form onSubmit={onSubmit} noValidate data-testid="profile-form">
            <Field
              label="Display name"
              name="display_name"
              maxLength={100}
              value={form.displayName}
              onChange={(e) => setForm((f) => ({ ...f, displayName: e.target.value }))}
              error={fieldError(error, "display_name")}
            />
            <Field
              as="textarea"
              label="About you"
              name="description"
              rows={3}
              maxLength={1000}
              value={form.description}
              onChange={(e) => setForm((f) => ({ ...f, description: e.target.value }))}
              error={fieldError(error, "description")}
            />
            <button type="submit" disabled={busy}>
              {busy ? "Saving…" : "Save profile"}
            </button>
          </form>
        </>
      )}
    </section>
  );
}

function AddressSection() {
  const saved = useCall(async (signal) => {
    try {
      const response = await accountClient.getShippingAddress({}, { signal });
      return response.shippingAddress;
    } catch (thrown) {
      // None saved yet: an empty form, not an error.
      if (toUiError(thrown).code === Code.NotFound) return undefined;
      throw thrown;
    }
  }, []);
  const [form, setForm] = useState<AddressForm>(EMPTY_ADDRESS);
  const [error, setError] = useState<UiError | null>(null);
  const [notice, setNotice] = useState(false);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    if (!saved.loading) setForm(fromAddress(saved.data));
  }, [saved.loading, saved.data]);

  const onSubmit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    setNotice(false);
    try {
      const response = await accountClient.updateShippingAddress({ shippingAddress: form });
      // Show what the server stored: it normalises, e.g. "1500001" → "150-0001".
      setForm(fromAddress(response.shippingAddress));
      setNotice(true);
    } catch (thrown) {
      setError(toUiError(thrown));
    } finally {
      setBusy(false);
    }
  };

  return (
    <section aria-labelledby="address-heading" className="panel">
      <h2 id="address-heading">Shipping address</h2>
      {saved.loading ? (
        <Loading label="Loading your address…" />
      ) : saved.error ? (
        <ErrorBanner error={saved.error} title="Your address could not be loaded" />
      ) : (
        <>
          {notice && <Notice>Address saved.</Notice>}
          <ErrorBanner error={error} title="Could not save the address" shownFields={ADDRESS_FIELDS} />
          <form onSubmit={onSubmit} noValidate data-testid="address-form">
            <AddressFields form={form} onChange={setForm} error={error} />
            <button type="submit" disabled={busy}>
              {busy ? "Saving…" : "Save address"}
            </button>
          </form>
        </>
      )}
    </section>
  );
}
