// Loads Stripe.js on demand, for the card step of a STRIPE order only. Stripe requires Stripe.js
// to be loaded from its own host (never bundled), so it is a <script> added the first time a card
// form is shown; shoppers who pay otherwise never download it. VITE_STRIPE_JS_URL points
// somewhere else (e.g. a local Stripe fake's copy) in development.
//
// Only what the card step calls is typed here: Card Element plus confirmCardPayment, which Stripe
// still supports for PaymentIntents confirmed in the page (and which local fakes implement too).

/** The part of a Stripe.js error the page shows. */
export interface StripeError {
  type?: string;
  code?: string;
  message?: string;
}

export interface StripeCardElement {
  mount(target: HTMLElement): void;
  destroy(): void;
  on(event: "change", handler: (event?: { complete: boolean; error?: StripeError }) => void): void;
}

export interface StripeElements {
  create(type: "card", options?: Record<string, unknown>): StripeCardElement;
}

export interface StripeClient {
  elements(options?: Record<string, unknown>): StripeElements;
  confirmCardPayment(
    clientSecret: string,
    data: { payment_method: { card: StripeCardElement } },
  ): Promise<{ error?: StripeError; paymentIntent?: { id: string; status: string } }>;
}

type StripeConstructor = (publishableKey: string) => StripeClient;

declare global {
  interface Window {
    Stripe?: StripeConstructor;
  }
}

/** Where Stripe.js is loaded from. */
export const stripeJsUrl: string =
  (import.meta.env.VITE_STRIPE_JS_URL as string | undefined) || "https://js.stripe.com/v3/";

let loading: Promise<StripeConstructor> | null = null;

/** Stripe.js's constructor, loading the script once; rejects when it cannot be loaded. */
function loadStripeJs(): Promise<StripeConstructor> {
  if (window.Stripe) return Promise.resolve(window.Stripe);
  if (loading === null) {
    loading = new Promise<StripeConstructor>((resolve, reject) => {
      const script = document.createElement("script");
      script.src = stripeJsUrl;
      script.async = true;
      script.onload = () =>
        window.Stripe ? resolve(window.Stripe) : reject(new Error("Stripe.js loaded without Stripe()"));
      script.onerror = () => reject(new Error("Stripe.js could not be loaded"));
      document.head.appendChild(script);
    }).catch((error: unknown) => {
      // A later card step may try again (the network may be back).
      loading = null;
      throw error;
    });
  }
  return loading;
}

/** A Stripe.js client for `publishableKey`. */
export async function stripeClient(publishableKey: string): Promise<StripeClient> {
  const Stripe = await loadStripeJs();
  return Stripe(publishableKey);
}
