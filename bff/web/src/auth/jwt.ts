// Reads (never verifies) the payload of an access token, to decide what the UI offers: the BFF
// verifies every token and remains the authority on what the caller may do.

/** The access-token claims the UI uses. */
export interface Claims {
  /** The user id. */
  sub: string;
  /** Lower-case role names, e.g. ["buyer", "seller"]. */
  roles: string[];
  /** Expiry, seconds since the epoch (0 when absent). */
  exp: number;
  /** E-mail address, when the issuer includes it. */
  email?: string;
}

function base64UrlDecode(segment: string): string {
  const base64 = segment.replace(/-/g, "+").replace(/_/g, "/");
  const padded = base64 + "=".repeat((4 - (base64.length % 4)) % 4);
  const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
  return new TextDecoder().decode(bytes);
}

/** Decodes a JWT's payload; null when it is not a well-formed JWT. */
export function decodeClaims(token: string): Claims | null {
  const payload = token.split(".")[1];
  if (!payload) return null;
  try {
    const raw: unknown = JSON.parse(base64UrlDecode(payload));
    if (typeof raw !== "object" || raw === null) return null;
    const obj = raw as Record<string, unknown>;
    const rolesClaim = obj["roles"];
    const roles = Array.isArray(rolesClaim)
      ? rolesClaim.filter((r): r is string => typeof r === "string")
      : typeof rolesClaim === "string"
        ? rolesClaim.split(/[\s,]+/).filter(Boolean)
        : [];
    const email = obj["email"];
    return {
      sub: typeof obj["sub"] === "string" ? obj["sub"] : "",
      roles: roles.map((r) => r.toLowerCase()),
      exp: typeof obj["exp"] === "number" ? obj["exp"] : 0,
      ...(typeof email === "string" ? { email } : {}),
    };
  } catch {
    return null;
  }
}
