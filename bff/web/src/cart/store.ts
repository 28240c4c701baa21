// The signed-in user's cart as the header and the cart pages share it: the last Cart the BFF
// returned (every CartService call answers with the whole cart), so the header's count follows
// every change without a call of its own. It is dropped on sign-out and loaded on sign-in.

import { useSyncExternalStore } from "react";
import { cartClient } from "../api/client";
import type { Cart } from "../gen/mercato/bff/v1/order_types_pb";

let current: Cart | null = null;
/** The user whose cart `current` is, so a late answer for a previous session is ignored. */
let owner: string | null = null;
const listeners = new Set<() => void>();

function emit(): void {
  for (const listener of listeners) listener();
}

/** Records the cart a CartService call (or a checkout) returned. */
export function setCart(cart: Cart | undefined): void {
  if (cart === undefined) return;
  current = cart;
  emit();
}

/** Forgets the cart (signed out, or a checkout emptied it and the next read refills it). */
export function forgetCart(): void {
  current = null;
  owner = null;
  emit();
}

/**
 * Loads the cart of `user` (the token's subject); a failure leaves the header without a count
 * rather than showing an error on every page.
 */
export async function loadCart(user: string): Promise<void> {
  owner = user;
  try {
    const response = await cartClient.getCart({});
    if (owner === user) setCart(response.cart);
  } catch {
    // The cart page shows the error when the user opens it.
  }
}

function subscribe(listener: () => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

const snapshot = () => current;

/** The last known cart, or null before it is loaded (or when signed out). */
export function useCart(): Cart | null {
  return useSyncExternalStore(subscribe, snapshot, snapshot);
}
