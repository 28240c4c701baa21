// Appended by bff/tests/browser.rs (tests/browser/stripe_js.rs) to localstripe's Stripe.js, which
// the card journey's BFF names as its STRIPE_JS_URL. localstripe's confirmCardPayment ignores the
// card Element (it only completes 3-D Secure for an intent confirmed with a secret key); this one
// confirms the PaymentIntent from the page as Stripe.js does: the publishable key, the client
// secret and the card typed into localstripe's Element, posted to
// /v1/payment_intents/{id}/confirm on the script's own origin (LOCALSTRIPE_BASE_API, declared by
// localstripe's script above), where the test confirms it at localstripe. Stripe(), elements()
// and the card Element stay localstripe's.
(() => {
  const localStripe = window.Stripe;
  window.Stripe = (apiKey) => {
    const stripe = localStripe(apiKey);
    stripe.confirmCardPayment = async (clientSecret, data) => {
      const element = data && data.payment_method && data.payment_method.card;
      // localstripe's Element keeps what was typed in `value` once any field changed.
      const card = element && element.value && element.value.card;
      if (!card) {
        return { error: { type: "validation_error", message: "Your card details are incomplete." } };
      }
      const intent = /^(pi_\w+)_secret_/.exec(clientSecret);
      if (!intent) {
        return { error: { type: "invalid_request_error", message: "The client secret is not a PaymentIntent's." } };
      }
      let response;
      try {
        // No Content-Type header, as localstripe's own calls: a simple request, no preflight.
        response = await fetch(`${LOCALSTRIPE_BASE_API}/v1/payment_intents/${intent[1]}/confirm`, {
          method: "POST",
          body: JSON.stringify({
            key: apiKey,
            client_secret: clientSecret,
            payment_method_data: {
              type: "card",
              card: { number: card.number, exp_month: card.exp_month, exp_year: card.exp_year, cvc: card.cvc },
            },
          }),
        });
      } catch {
        return { error: { type: "api_connection_error", message: "Stripe could not be reached." } };
      }
      const body = await response.json().catch(() => ({}));
      if (!response.ok || body.error) {
        return { error: body.error || { type: "api_error", message: `Stripe answered ${response.status}.` } };
      }
      return { paymentIntent: body };
    };
    return stripe;
  };
})();
