// The signed-in session, in memory only (never localStorage/sessionStorage: a token an injected
// script can read outlives the tab). A reload therefore signs the user out, by design.

import { useSyncExternalStore } from "react";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import type { TokenPair } from "../gen/mercato/bff/v1/auth_service_pb";
import type { Account } from "../gen/mercato/bff/v1/account_types_pb";
import { type Claims, decodeClaims } from "./jwt";

/** A signed-in session. */
export interface Session {
  readonly accessToken: string;
  readonly refreshToken: string;
  /** When the access token expires, ms since the epoch. */
  readonly accessExpiresAt: number;
  readonly claims: Claims;
  /** Display name or e-mail for the header, when known. */
  readonly label: string;
}

let current: Session | null = null;
const listeners = new Set<() => void>();

function emit(): void {
  for (const listener of listeners) listener();
}

/** The current session, or null when signed out. */
export function getSession(): Session | null {
  return current;
}

/** Starts or replaces the session with freshly issued tokens. */
export function setSession(tokens: TokenPair, account?: Account): void {
  const claims = decodeClaims(tokens.accessToken) ?? { sub: "", roles: [], exp: 0 };
  const expiresAt = tokens.accessTokenExpireTime
    ? timestampMs(tokens.accessTokenExpireTime)
    : claims.exp * 1000;
  const label = account
    ? account.displayName || account.email
    : (current?.label ?? claims.email ?? "Account");
  current = {
    accessToken: tokens.accessToken,
    refreshToken: tokens.refreshToken,
    accessExpiresAt: expiresAt,
    claims,
    label,
  };
  emit();
}

/** Updates the header label (after a profile edit). */
export function setSessionLabel(label: string): void {
  if (current && label) {
    current = { ...current, label };
    emit();
  }
}

/** Forgets the session (sign-out, or a refresh that failed). */
export function clearSession(): void {
  if (current !== null) {
    current = null;
    emit();
  }
}

function subscribe(listener: () => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

/** The session as React state. */
export function useSession(): Session | null {
  return useSyncExternalStore(subscribe, getSession, getSession);
}

/** Whether the session's token carries the role (a UI hint; the BFF decides). */
export function hasRole(session: Session | null, role: "buyer" | "seller" | "admin"): boolean {
  return session?.claims.roles.includes(role) ?? false;
}
