// Loads Stripe.js on demand, for the card step of a STRIPE order only. Stripe requires Stripe.js
// to be loaded from its own host (never bundled), so it is a <script> added the first time a card
// form is shown; shoppers who pay otherwise never download it. Where it comes from is the BFF's
// STRIPE_JS_URL, sent with the publishable key in the order's payment (Stripe's host unless the
// BFF points at a local Stripe fake's copy, as the browser test does), so one build of the
// storefront serves both.
//
// Only what the card step calls is typed here: Card Element plus confirmCardPayment, which Stripe
// still supports for PaymentIntents confirmed in the page (localstripe's copy mounts a Card
// Element but confirms only 3-D Secure steps; the browser test extends it, e2e/stripe-confirm.js).

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

/** Where Stripe.js comes from when the payment names no URL (a BFF older than the setting). */
export const DEFAULT_STRIPE_JS_URL = "https://js.stripe.com/v3/";

let loading: Promise<StripeConstructor> | null = null;

/** Stripe.js's constructor, loading the script from `url` once; rejects when it cannot be loaded. */
function loadStripeJs(url: string): Promise<StripeConstructor> {
  if (window.Stripe) return Promise.resolve(window.Stripe);
  if (loading === null) {
    loading = new Promise<StripeConstructor>((resolve, reject) => {
      const script = document.createElement("script");
      script.src = url;
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

/** A Stripe.js client for `publishableKey`, with Stripe.js loaded from `stripeJsUrl`. */
export async function stripeClient(publishableKey: string, stripeJsUrl: string): Promise<StripeClient> {
  const Stripe = await loadStripeJs(stripeJsUrl || DEFAULT_STRIPE_JS_URL);
  return Stripe(publishableKey);
}
