// The gRPC-Web clients of the public API. One transport carries every call; an interceptor adds
// the access token and, when the BFF answers UNAUTHENTICATED, refreshes the session once
// (single-flight: concurrent calls share one RefreshToken) and retries; if the refresh fails the
// session ends.

import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { AccountService } from "../gen/mercato/bff/v1/account_service_pb";
import { AuthService } from "../gen/mercato/bff/v1/auth_service_pb";
import { CartService } from "../gen/mercato/bff/v1/cart_service_pb";
import { CatalogService } from "../gen/mercato/bff/v1/catalog_service_pb";
import { CouponService } from "../gen/mercato/bff/v1/coupon_service_pb";
import { OrderService } from "../gen/mercato/bff/v1/order_service_pb";
import { SellerService } from "../gen/mercato/bff/v1/seller_service_pb";
import { WalletService } from "../gen/mercato/bff/v1/wallet_service_pb";
import { clearSession, getSession, setSession } from "../auth/session";

/** Where the BFF is: VITE_BFF_URL in development, else the origin that served the SPA. */
export const bffUrl: string =
  (import.meta.env.VITE_BFF_URL as string | undefined) || window.location.origin;

/** Refresh this long before the access token expires, to absorb clock skew and latency. */
const REFRESH_MARGIN_MS = 15_000;

// AuthService calls carry no access token (Logout's credential is the refresh token), and the
// refresh itself must not go through the refreshing interceptor.
const plainTransport = createGrpcWebTransport({ baseUrl: bffUrl });

/** AuthService (public; no access token). */
export const authClient = createClient(AuthService, plainTransport);

let refreshing: Promise<boolean> | null = null;

/**
 * Exchanges the refresh token for new tokens. Concurrent callers share one call, because the
 * refresh token is single use: a second RefreshToken with the same token would count as reuse
 * and revoke the whole session family. Resolves false (and signs out) when it fails.
 */
export function refreshSession(): Promise<boolean> {
  if (refreshing === null) {
    refreshing = (async () => {
      const session = getSession();
      if (session === null) return false;
      try {
        const response = await authClient.refreshToken({ refreshToken: session.refreshToken });
        if (!response.tokens) throw new ConnectError("no tokens in the refresh response", Code.Internal);
        // Signed out while the refresh was in flight: stay signed out.
        if (getSession() !== session) return getSession() !== null;
        setSession(response.tokens);
        return true;
      } catch {
        clearSession();
        return false;
      }
    })().finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

const bearer = (token: string): string => `Bearer ${token}`;

/** Adds `authorization: Bearer`, refreshing ahead of expiry and once after UNAUTHENTICATED. */
const authInterceptor: Interceptor = (next) => async (req) => {
  let session = getSession();
  if (session !== null && session.accessExpiresAt - Date.now() < REFRESH_MARGIN_MS) {
    await refreshSession();
    session = getSession();
  }
  const sent = session?.accessToken;
  if (sent) req.header.set("authorization", bearer(sent));
  try {
    return await next(req);
  } catch (error) {
    if (!sent || ConnectError.from(error).code !== Code.Unauthenticated) throw error;
    // Another call may already have refreshed while this one was in flight: then just retry
    // with the newer token instead of spending the refresh token again.
    const now = getSession();
    const renewed = now !== null && now.accessToken !== sent ? true : await refreshSession();
    const token = getSession()?.accessToken;
    if (!renewed || !token) throw error;
    req.header.set("authorization", bearer(token));
    return await next(req);
  }
};

const authedTransport = createGrpcWebTransport({
  baseUrl: bffUrl,
  interceptors: [authInterceptor],
});

/** CatalogService (public, but sends the token when there is one). */
export const catalogClient = createClient(CatalogService, authedTransport);
/** AccountService (the caller's own account). */
export const accountClient = createClient(AccountService, authedTransport);
/** SellerService (needs the seller role). */
export const sellerClient = createClient(SellerService, authedTransport);
/** CartService (the caller's cart). */
export const cartClient = createClient(CartService, authedTransport);
/** OrderService (checkout and the caller's orders; WatchOrder is server streaming). */
export const orderClient = createClient(OrderService, authedTransport);
/** CouponService (campaigns are public; claims and "my coupons" need a session). */
export const couponClient = createClient(CouponService, authedTransport);
/** WalletService (the caller's points: balance, charges, ledger). */
export const walletClient = createClient(WalletService, authedTransport);

/** Signs out at the BFF (revoking the refresh token's session) and forgets the tokens. */
export async function logout(): Promise<void> {
  const session = getSession();
  clearSession();
  if (session !== null) {
    try {
      await authClient.logout({ refreshToken: session.refreshToken, allSessions: false });
    } catch {
      // The tokens are already forgotten here; a failed revoke leaves only a session that
      // expires on its own, which is not worth bothering the user with.
    }
  }
}

/** A fresh idempotency key for a retryable mutation. */
export function idempotencyKey(): string {
  return crypto.randomUUID();
}
