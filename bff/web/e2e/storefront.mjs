#!/usr/bin/env node
// Browser journeys through the storefront served by a running BFF, with Debian's chromium
// driven by playwright-core (no browser download). Each journey runs in a browser context of its
// own (so its own session), and no journey may log a console error in the storefront.
//
//   BASE_URL           the BFF serving bff/web/dist (default http://127.0.0.1:8080)
//   E2E_ARTIFACTS      where screenshots go (default bff/web/e2e/artifacts)
//   CHROMIUM_PATH      the browser (default /usr/bin/chromium)
//   SEED_SELLER_TOKEN  optional access token of a seller: a product with three variants is
//                      created and published first (through SellerService, the public API), and
//                      the catalog and product steps assert on it; without it they accept an
//                      empty catalog and the cart, checkout and order steps are skipped.
//   SEED_ADMIN_TOKEN   optional access token of an admin: two coupon campaigns are created first
//                      (through AdminService), and the coupon steps claim them; without it they
//                      are skipped and checkout goes without a coupon.
//   E2E_API_URL        where seeding calls the BFF (default BASE_URL; set it to the BFF when
//                      BASE_URL is Vite's dev server)
//   E2E_WATCH_MAX_SECONDS  the BFF's WATCH_MAX_DURATION when it is short: the order page is then
//                      checked to watch again after the BFF ends a watch UNAVAILABLE
//   E2E_CARRIER_URL    the carrier of a process service in manual mode (bff/tests/browser.rs
//                      serves one): POST /orders/{id}/ship?tracking_number=… and
//                      /orders/{id}/deliver. With it (and a payment service behind the BFF) the
//                      points and sandbox journeys follow their orders to FINISHED; without it
//                      they are skipped.
//   E2E_ALLOWED_ORIGIN_URL, E2E_FOREIGN_ORIGIN_URL  pages on two other origins that call the BFF
//                      (e2e/cross-origin.html), the first in the BFF's CORS allow-list, the
//                      second not; without them the CORS step is skipped.
//   E2E_LIMITED_URL, E2E_LIMITED_WRITES  a BFF in front of the same system admitting only that
//                      many writes back to back; without it the rate-limit step is skipped.
//   E2E_STRIPE_URL, E2E_STRIPE_JS_URL  a BFF in front of the same system (its payment service on
//                      localstripe) that hands payers a publishable key, and the STRIPE_JS_URL it
//                      names: localstripe's Stripe.js, extended by e2e/stripe-confirm.js
//                      (bff/tests/browser.rs serves it); without them the card journey is
//                      skipped.
//
// Journeys:
// 1. The shopper: home → register (a validation error first) → search → product detail with a
//    variant switch → account address (a validation error first, then saved and normalised) →
//    sign out → a refused sign-in shows the server's message → sign in again → add two variants
//    to the cart (one beyond its stock) → the cart shows their statuses, a quantity fixes the
//    short line → claim coupons (one already claimed on "another device" reads "you already have
//    it") → checkout with the saved address, SANDBOX and a coupon: refused while a line sold out
//    (the line named, the trace id shown), then placed by double click once it is back → the
//    order page shows it live (and watches again when the BFF ends a watch) → the history shows
//    exactly one order → cancel → CANCELLED on screen and the watch ends on it → the coupon is
//    available again → the wallet: a charge over the limit refused with the server's message
//    and trace id, then points added, the history listing the charge → two variants again →
//    checkout with points and the coupon → the order page shows PAID, SHIPPED with the tracking
//    number, FINISHED, each delivered by the stream → the history shows it FINISHED and the
//    wallet the points spent on it.
// 2. The sandbox payment: another shopper checks out to a typed address with SANDBOX, pays on
//    the sandbox's page in a new tab and, back in the storefront's tab, watches the order go
//    PAID → SHIPPED → FINISHED.
// 3. The card payment, on the Stripe BFF: a shopper checks out with Card (Stripe), the order
//    page loads Stripe.js from E2E_STRIPE_JS_URL and mounts localstripe's card form; a declined
//    card shows Stripe's message, the form is not offered again and the order is CANCELLED with
//    the payment FAILED for that reason (the payment service fails a declined intent at once);
//    checked out again, the Visa test card is accepted, localstripe's signed webhook pays the
//    order and the page shows PAID → SHIPPED (with the tracking number) → FINISHED.
// 4. The edges: a page on an allowed origin reads a gRPC-Web answer while one on another origin
//    is refused by the browser (CORS); on the rate-limited BFF the write over the budget shows a
//    friendly "try again" with the wait, not a generic failure.
// Exits non-zero on the first failure, naming the journey and step.

import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const BASE_URL = (process.env.BASE_URL || "http://127.0.0.1:8080").replace(/\/+$/, "");
const ARTIFACTS = path.resolve(process.env.E2E_ARTIFACTS || path.join(here, "artifacts"));
const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const SEED_TOKEN = process.env.SEED_SELLER_TOKEN || "";
const ADMIN_TOKEN = process.env.SEED_ADMIN_TOKEN || "";
const API_URL = (process.env.E2E_API_URL || BASE_URL).replace(/\/+$/, "");
const TIMEOUT_MS = Number(process.env.E2E_TIMEOUT_MS || 15_000);
// The BFF's WATCH_MAX_DURATION in seconds, when the test set it short: the order page must then
// be seen watching again after the BFF ended a watch UNAVAILABLE.
const WATCH_MAX_SECONDS = Number(process.env.E2E_WATCH_MAX_SECONDS || 0);
const CARRIER_URL = (process.env.E2E_CARRIER_URL || "").replace(/\/+$/, "");
const ALLOWED_ORIGIN_URL = process.env.E2E_ALLOWED_ORIGIN_URL || "";
const FOREIGN_ORIGIN_URL = process.env.E2E_FOREIGN_ORIGIN_URL || "";
const LIMITED_URL = (process.env.E2E_LIMITED_URL || "").replace(/\/+$/, "");
const LIMITED_WRITES = Number(process.env.E2E_LIMITED_WRITES || 0);
const STRIPE_URL = (process.env.E2E_STRIPE_URL || "").replace(/\/+$/, "");
const STRIPE_JS_URL = process.env.E2E_STRIPE_JS_URL || "";
// Test cards as localstripe knows them (its resources.py): the Visa card is charged; 0341 is the
// one it declines when a PaymentIntent charges it (its other decline numbers only fail attaching
// a card to a customer). Typed as localstripe's card form expects: 16 digits, MM, YY, 3 digits.
const VISA_CARD = { number: "4242424242424242", expMonth: "12", expYear: "34", cvc: "123" };
const DECLINED_CARD = { number: "4000000000000341", expMonth: "12", expYear: "34", cvc: "123" };

const runId = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
/** A shopper of this run: `tag` tells the journeys' shoppers apart. */
function shopper(tag) {
  return {
    email: `e2e-${tag}${runId}@example.com`,
    password: `e2e-pass-${runId}`,
    displayName: `E2E ${tag}${runId}`,
  };
}
const user = shopper("");
/** The sandbox journey's shopper. */
const payer = shopper("pay-");
/** The rate-limit step's shopper. */
const hasty = shopper("hasty-");
/** The card journey's shopper. */
const cardholder = shopper("card-");
// A 1x1 PNG answered for every image outside BASE_URL (product images live on a CDN): the run
// stays hermetic, and an unreachable image host cannot add console errors.
const PIXEL = Buffer.from(
  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==",
  "base64",
);

/** What the journeys need to know about the seeded product, when there is one. */
let seeded = null;
/** The seeded coupon campaigns, when there are some. */
let campaigns = null;
/** The order the checkout step placed. */
let placedOrderId = null;
/** The order paid with points. */
let pointsOrderId = null;
/** The order paid on the sandbox page. */
let sandboxOrderId = null;
/** The card orders: the declined one, and the one paid by card. */
let declinedOrderId = null;
let cardOrderId = null;
/** Whether the system behind the BFF pays and ships orders (a payment service and a carrier). */
const fulfils = () => Boolean(seeded && CARRIER_URL);

// ------------------------------------------------------------------------------------ seeding

/** A client of the public API for `service` (from e2e/gen), sending `token` when given. */
async function apiClient(serviceFile, serviceName, token) {
  let modules;
  try {
    modules = await Promise.all([
      import("@connectrpc/connect"),
      import("@connectrpc/connect-web"),
      import(`./gen/mercato/bff/v1/${serviceFile}_pb.js`),
    ]);
  } catch (error) {
    throw new Error(`e2e/gen is missing: run \`npm run generate\` first (${error.message})`);
  }
  const [{ createClient }, { createGrpcWebTransport }, generated] = modules;
  const transport = createGrpcWebTransport({
    baseUrl: API_URL,
    interceptors: token
      ? [
          (next) => (req) => {
            req.header.set("authorization", `Bearer ${token}`);
            return next(req);
          },
        ]
      : [],
  });
  return createClient(generated[serviceName], transport);
}

/**
 * Creates and publishes a product with three variants: Red (7 in stock), Blue (sold out) and
 * Green (1 in stock, so two in a cart are OVER_STOCK).
 */
async function seedProduct() {
  const seller = await apiClient("seller_service", "SellerService", SEED_TOKEN);
  const name = `E2E Mug ${runId}`;
  const money = (amount) => ({ currencyCode: "JPY", amountMinor: BigInt(amount) });
  const { product } = await seller.createProduct({
    idempotencyKey: `e2e-${runId}`,
    product: {
      name,
      description: `A mug made for the storefront test ${runId}.\nDishwasher safe.`,
      category: "e2e",
      tags: ["e2e", runId],
      attributes: { material: "stoneware" },
      options: [{ name: "Colour", values: ["Red", "Blue", "Green"] }],
      skus: [
        { skuCode: `E2E-${runId}-RED`, optionValues: { Colour: "Red" }, price: money(1200), active: true },
        { skuCode: `E2E-${runId}-BLUE`, optionValues: { Colour: "Blue" }, price: money(1800), active: true },
        { skuCode: `E2E-${runId}-GREEN`, optionValues: { Colour: "Green" }, price: money(1500), active: true },
      ],
    },
  });
  for (const [colour, onHand] of [["Red", 7n], ["Green", 1n]]) {
    const sku = product.skus.find((s) => s.optionValues.Colour === colour);
    const { stock } = await seller.getSkuStock({ skuId: sku.skuId });
    await seller.adjustStock({
      skuId: sku.skuId,
      onHand,
      expectedVersion: stock.version,
      reason: "e2e seed",
      idempotencyKey: `e2e-stock-${colour}-${runId}`,
    });
  }
  await seller.publishProduct({ productId: product.productId });
  return {
    productId: product.productId,
    greenSkuId: product.skus.find((s) => s.optionValues.Colour === "Green").skuId,
    name,
    redCode: `E2E-${runId}-RED`,
    blueCode: `E2E-${runId}-BLUE`,
    greenCode: `E2E-${runId}-GREEN`,
  };
}

/** Sets a SKU's units on hand as its seller (reading the stock version first). */
async function setStock(skuId, onHand) {
  const seller = await apiClient("seller_service", "SellerService", SEED_TOKEN);
  const { stock } = await seller.getSkuStock({ skuId });
  await seller.adjustStock({
    skuId,
    onHand: BigInt(onHand),
    expectedVersion: stock.version,
    reason: "e2e",
    idempotencyKey: `e2e-stock-${skuId}-${stock.version}-${onHand}`,
  });
}

/**
 * Creates a coupon (¥300 off orders of ¥1,000 or more) and two running campaigns of it: one the
 * shopper claims in the browser, one claimed "on another device" first.
 */
async function seedCampaigns() {
  const admin = await apiClient("admin_service", "AdminService", ADMIN_TOKEN);
  const money = (amount) => ({ currencyCode: "JPY", amountMinor: BigInt(amount) });
  const { coupon } = await admin.createCoupon({
    idempotencyKey: `e2e-coupon-${runId}`,
    coupon: {
      name: `E2E ¥300 off ${runId}`,
      description: "A storefront test coupon.",
      kind: 1, // FIXED
      fixedDiscount: money(300),
      minimumOrderAmount: money(1000),
      validityDays: 30,
    },
  });
  const now = Math.floor(Date.now() / 1000);
  const window = { startTime: { seconds: BigInt(now - 60), nanos: 0 }, endTime: { seconds: BigInt(now + 86_400), nanos: 0 } };
  const create = async (name) =>
    (
      await admin.createCampaign({
        idempotencyKey: `e2e-campaign-${name.replace(/\s+/g, "-")}-${runId}`,
        campaign: { couponId: coupon.couponId, name: `E2E ${name} ${runId}`, totalQuantity: 50n, ...window },
      })
    ).campaign;
  return { coupon, browser: await create("spring sale"), elsewhere: await create("app exclusive") };
}

// ------------------------------------------------------------------------------------ helpers

function assert(condition, message) {
  if (!condition) throw new Error(message);
}

let shot = 0;
async function screenshot(page, name) {
  shot += 1;
  const file = path.join(ARTIFACTS, `${String(shot).padStart(2, "0")}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  await audit(page, name);
}

// axe-core (npm, run in the page): every storefront page a step screenshots is checked against
// WCAG 2.1 A/AA rules (labels, names, contrast, landmarks, ARIA); a serious or critical
// violation fails the step. Pages of other origins (the payment service's sandbox page, the
// cross-origin fixtures) and localstripe's card form are not the storefront's and are skipped.
const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");
const STOREFRONT_ORIGINS = [BASE_URL, STRIPE_URL].filter(Boolean).map((url) => new URL(url).origin);

async function audit(page, name) {
  if (!STOREFRONT_ORIGINS.includes(new URL(page.url()).origin)) return;
  if (!(await page.evaluate(() => Boolean(window.axe)))) await page.addScriptTag({ content: AXE_SOURCE });
  const violations = await page.evaluate(async () => {
    const result = await window.axe.run(
      { exclude: [["#card-element"], ["iframe"]] },
      { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] } },
    );
    return result.violations
      .filter((violation) => violation.impact === "serious" || violation.impact === "critical")
      .map((violation) => ({
        id: violation.id,
        help: violation.help,
        nodes: violation.nodes.slice(0, 3).map((node) => node.target.join(" ")),
      }));
  });
  if (violations.length > 0) {
    throw new Error(`accessibility (${name}): ${JSON.stringify(violations)}`);
  }
}

/** Waits until no loading indicator is left on the page. */
async function settled(page) {
  await page.waitForFunction(() => document.querySelectorAll(".loading").length === 0, null, {
    timeout: TIMEOUT_MS,
  });
}

async function text(locator) {
  return ((await locator.textContent({ timeout: TIMEOUT_MS })) ?? "").trim();
}

/** Fills the address form (labels as the page shows them). */
async function fillAddress(page, postalCode) {
  const form = page.getByTestId("address-form");
  await form.getByLabel("Recipient name").fill("山田 太郎");
  await form.getByLabel("Country code").fill("JP");
  await form.getByLabel("Postal code").fill(postalCode);
  await form.getByLabel("Prefecture").fill("東京都");
  await form.getByLabel("City / ward").fill("渋谷区");
  await form.getByLabel("Address line 1").fill("神南1-2-3");
  await form.getByLabel("Phone number").fill("090-1234-5678");
  await form.getByRole("button", { name: "Save address" }).click();
}


/** A locator's element with `attribute` equal to `value`, waited for. */
async function waitForAttribute(locator, attribute, value) {
  await locator.and(locator.page().locator(`[${attribute}="${value}"]`)).waitFor({ timeout: TIMEOUT_MS });
}

/**
 * Presses Tab until the focused element matches `matches(element, arg)` (at most 80 times), and
 * checks that the focus shows: its outline differs from the same element unfocused.
 */
async function tabTo(page, what, matches, arg) {
  for (let i = 0; i < 80; i += 1) {
    await page.keyboard.press("Tab");
    const found = await page.evaluate(
      ([source, value]) => {
        const el = document.activeElement;
        // eslint-disable-next-line no-new-func
        const test = new Function(`return (${source})`)();
        if (!el || el === document.body || !test(el, value)) return null;
        const look = () => {
          const style = getComputedStyle(el);
          return `${style.outlineStyle} ${style.outlineWidth} ${style.outlineColor} | ${style.boxShadow}`;
        };
        const focused = look();
        el.blur();
        const unfocused = look();
        el.focus();
        return { focused, unfocused };
      },
      [matches.toString(), arg],
    );
    if (found) {
      // The focus must change how the element looks (an outline or a ring of its own).
      assert(found.focused !== found.unfocused && !found.focused.startsWith("none"),
        `${what} shows no focus indicator: ${JSON.stringify(found)}`);
      return;
    }
  }
  throw new Error(`${what} was not reached with the Tab key`);
}

/** Opens the seeded product from the shop's search, as a shopper would (no reload: tokens live in memory). */
async function openSeededProduct(page) {
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Shop" }).click();
  await page.getByRole("heading", { level: 1, name: "Shop" }).waitFor({ timeout: TIMEOUT_MS });
  await page.getByRole("searchbox", { name: "Search" }).fill(runId);
  await page.getByTestId("search-submit").click();
  await settled(page);
  await page.getByTestId("product-card").filter({ hasText: seeded.name }).first().getByRole("link").click();
  await page.getByTestId("product-name").waitFor({ timeout: TIMEOUT_MS });
  await settled(page);
}

/** Switches the product page to a colour and waits for its SKU to show. */
async function chooseColour(page, colour, skuCode) {
  await page.getByTestId("option-Colour").getByText(colour, { exact: true }).click();
  await page.waitForFunction(
    (code) => document.querySelector('[data-testid="sku-code"]')?.textContent?.includes(code),
    skuCode,
    { timeout: TIMEOUT_MS },
  );
}

/** Adds `quantity` of the chosen variant and waits for the header to count `expectedCount`. */
async function addToCart(page, quantity, expectedCount) {
  const form = page.getByTestId("add-to-cart");
  await form.getByLabel("Quantity").fill(String(quantity));
  await form.getByRole("button", { name: "Add to cart" }).click();
  await form.getByTestId("notice").waitFor({ timeout: TIMEOUT_MS });
  await page.getByTestId("cart-count").filter({ hasText: new RegExp(`^${expectedCount}$`) }).waitFor({ timeout: TIMEOUT_MS });
}

/** The shopper's access token from a sign-in of their own, as another device would have. */
async function signInElsewhere() {
  const auth = await apiClient("auth_service", "AuthService", "");
  const { tokens } = await auth.login({ email: user.email, password: user.password });
  return tokens.accessToken;
}

function nav(page, testId) {
  return page.getByTestId(testId).click();
}

/**
 * Screenshots the page at a phone's width, checking nothing makes it scroll sideways, then
 * goes back to the desktop size.
 */
async function atPhoneWidth(page, name) {
  const desktop = page.viewportSize();
  await page.setViewportSize({ width: 390, height: 844 });
  try {
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert(overflow <= 0, `at 390 px the page is ${overflow} px wider than the screen`);
    await screenshot(page, `${name}-phone`);
  } finally {
    await page.setViewportSize(desktop);
  }
}

/** Asks the test carrier to ship (with `trackingNumber`) or deliver an order's parcel. */
async function carrier(orderId, action, trackingNumber) {
  const query = trackingNumber ? `?tracking_number=${encodeURIComponent(trackingNumber)}` : "";
  const response = await fetch(`${CARRIER_URL}/orders/${orderId}/${action}${query}`, { method: "POST" });
  assert(response.ok, `the carrier could not ${action} order ${orderId}: ${await response.text()}`);
}

/** Registers `who` through the storefront at `base` and waits for the account page. */
async function registerInUi(page, base, who) {
  await page.goto(`${base}/register`, { waitUntil: "domcontentloaded" });
  const form = page.getByTestId("register-form");
  await form.getByLabel("E-mail").fill(who.email);
  await form.getByLabel("Password").fill(who.password);
  await form.getByLabel("Display name").fill(who.displayName);
  await form.getByRole("button", { name: "Create account" }).click();
  await page.waitForURL(`${base}/account`, { timeout: TIMEOUT_MS });
  await page.getByTestId("nav-account").waitFor({ timeout: TIMEOUT_MS });
  await settled(page);
}

/** Waits until the order page shows `status` and the order's stream itself delivered it. */
async function orderReaches(page, status) {
  await waitForAttribute(page.getByTestId("order").getByTestId("order-status").first(), "data-status", status);
  await waitForAttribute(page.getByTestId("watch-state"), "data-streamed", status);
}

/** The step of the order page's progress that is current. */
async function currentStep(page) {
  return page.locator('[data-testid="progress"] li[aria-current="step"]').getAttribute("data-step");
}

/**
 * Follows a paid order on its page to FINISHED: PAID first, then the carrier ships it (the page
 * shows SHIPPED and the tracking number) and delivers it (FINISHED, and the watch ends there) —
 * each state delivered by the order's stream, each step screenshotted under `label`.
 */
async function followToFinished(page, orderId, label) {
  await orderReaches(page, "PAID");
  assert((await currentStep(page)) === "PAID", `the progress shows ${await currentStep(page)} for a paid order`);
  await waitForAttribute(page.getByTestId("payment"), "data-payment-status", "SUCCEEDED");
  assert((await text(page.getByTestId("payment-status"))) === "Paid", "the payment is not shown as paid");
  assert((await page.getByTestId("cancel-order").count()) === 0, "a paid order offers Cancel");
  await screenshot(page, `${label}-paid`);

  const tracking = `E2E-${label.toUpperCase()}-${runId}`.replace(/[^A-Z0-9-]/gi, "");
  await carrier(orderId, "ship", tracking);
  await orderReaches(page, "SHIPPED");
  assert((await text(page.getByTestId("tracking-number"))) === tracking,
    `the tracking number reads "${await text(page.getByTestId("tracking-number"))}", not ${tracking}`);
  assert(/Mercato Test Post/.test(await text(page.getByTestId("shipment"))), "the carrier is not named");
  assert((await currentStep(page)) === "SHIPPED", `the progress shows ${await currentStep(page)} for a shipped order`);
  await screenshot(page, `${label}-shipped`);

  await carrier(orderId, "deliver");
  await orderReaches(page, "FINISHED");
  await waitForAttribute(page.getByTestId("watch-state"), "data-watch", "ended");
  const timeline = await page.locator('[data-testid="timeline"] li').evaluateAll((items) =>
    items.map((item) => item.getAttribute("data-status")));
  for (const step of ["PAID", "SHIPPED", "FINISHED"]) {
    assert(timeline.includes(step), `the timeline lacks ${step}: ${timeline.join(" → ")}`);
  }
  assert(timeline.indexOf("PAID") < timeline.indexOf("SHIPPED") && timeline.indexOf("SHIPPED") < timeline.indexOf("FINISHED"),
    `the timeline is out of order: ${timeline.join(" → ")}`);
  assert((await page.getByTestId("error-banner").count()) === 0, "the finished order shows an error");
  await screenshot(page, `${label}-finished`);
  await atPhoneWidth(page, `${label}-finished`);
}

// ------------------------------------------------------------------------------------ journeys

const steps = [
  {
    name: "seed catalog",
    async run() {
      if (!SEED_TOKEN) {
        console.log("  (no SEED_SELLER_TOKEN: catalog steps accept an empty catalog)");
        return;
      }
      seeded = await seedProduct();
      console.log(`  seeded product ${seeded.productId} (${seeded.name})`);
      if (ADMIN_TOKEN) {
        campaigns = await seedCampaigns();
        console.log(`  seeded campaigns ${campaigns.browser.campaignId}, ${campaigns.elsewhere.campaignId}`);
      } else {
        console.log("  (no SEED_ADMIN_TOKEN: the coupon steps are skipped)");
      }
    },
  },
  {
    name: "home",
    async run(page) {
      await page.goto(`${BASE_URL}/`, { waitUntil: "domcontentloaded" });
      await page.getByRole("heading", { level: 1, name: /handmade goods/i }).waitFor({ timeout: TIMEOUT_MS });
      await settled(page);
      const featured = page.getByRole("heading", { name: "Featured" });
      const best = page.getByRole("heading", { name: "Best sellers" });
      assert(await featured.isVisible(), "the featured section is missing");
      assert(await best.isVisible(), "the best sellers section is missing");
      assert((await page.getByTestId("error-banner").count()) === 0, "the home page shows an error");
      await screenshot(page, "home");
    },
  },
  {
    name: "register (validation error, then success)",
    async run(page) {
      await page.getByTestId("nav-register").click();
      const form = page.getByTestId("register-form");
      await form.getByLabel("E-mail").fill(user.email);
      await form.getByLabel("Password").fill("short");
      await form.getByLabel("Display name").fill(user.displayName);
      await form.getByRole("button", { name: "Create account" }).click();
      // The BFF refuses the short password: INVALID_ARGUMENT with a field violation, shown next
      // to the field, with the server's message and a trace id for support.
      const fieldError = page.getByTestId("field-error-password");
      await fieldError.waitFor({ timeout: TIMEOUT_MS });
      const banner = page.getByTestId("error-banner");
      assert((await banner.getAttribute("data-code")) === "INVALID_ARGUMENT",
        `expected INVALID_ARGUMENT, got ${await banner.getAttribute("data-code")}`);
      assert((await text(fieldError)).length > 0, "the password violation has no message");
      assert(/trace id/i.test(await text(page.getByTestId("error-trace"))), "no trace id is shown for support");
      await screenshot(page, "register-validation-error");

      await form.getByLabel("Password").fill(user.password);
      await form.getByRole("button", { name: "Create account" }).click();
      await page.waitForURL(`${BASE_URL}/account`, { timeout: TIMEOUT_MS });
      const account = page.getByTestId("nav-account");
      await account.waitFor({ timeout: TIMEOUT_MS });
      assert((await text(account)) === user.displayName, `the header shows "${await text(account)}"`);
      await settled(page);
      assert((await text(page.getByTestId("account-email"))).includes(user.email), "the account page lacks the e-mail");
      await screenshot(page, "registered");
    },
  },
  {
    name: "browse and search",
    async run(page) {
      await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Shop" }).click();
      await page.getByRole("heading", { level: 1, name: "Shop" }).waitFor({ timeout: TIMEOUT_MS });
      await settled(page);
      const results = page.getByTestId("results");
      const empty = page.getByTestId("empty");
      assert((await results.count()) + (await empty.count()) === 1, "neither results nor the empty state is shown");
      await screenshot(page, "catalog");
      if (!seeded) return;
      await page.getByRole("searchbox", { name: "Search" }).fill(runId);
      // A freshly published product may take a moment to reach the search (caches): search
      // again until it appears, within the step's patience.
      const deadline = Date.now() + TIMEOUT_MS;
      const card = page.getByTestId("product-card").filter({ hasText: seeded.name });
      for (;;) {
        await page.getByTestId("search-submit").click();
        await settled(page);
        if ((await card.count()) > 0) break;
        assert(Date.now() < deadline, `the seeded product "${seeded.name}" is not found by search`);
        await page.waitForTimeout(500);
      }
      assert(new URL(page.url()).searchParams.get("q") === runId, "the query is not kept in the URL");
      await screenshot(page, "search-results");
    },
  },
  {
    name: "product detail with variant switch",
    async run(page) {
      const cards = page.getByTestId("product-card");
      if (!seeded) {
        if ((await cards.count()) === 0) {
          console.log("  (catalog empty: product detail skipped)");
          return;
        }
        await cards.first().getByRole("link").click();
        await page.getByTestId("product-name").waitFor({ timeout: TIMEOUT_MS });
        await settled(page);
        await screenshot(page, "product");
        return;
      }
      await cards.filter({ hasText: seeded.name }).first().getByRole("link").click();
      const name = page.getByTestId("product-name");
      await name.waitFor({ timeout: TIMEOUT_MS });
      assert((await text(name)) === seeded.name, `the product page shows "${await text(name)}"`);
      // Initially the variant with stock (Red, ¥1,200).
      const price = page.getByTestId("product-price");
      assert((await text(price)).includes("1,200"), `the Red price reads "${await text(price)}"`);
      assert((await text(page.getByTestId("sku-code"))).includes(seeded.redCode), "Red is not selected first");
      assert(/in stock|left/i.test(await text(page.getByTestId("availability"))), "Red is not shown as in stock");
      await screenshot(page, "product-red");
      await page.getByTestId("option-Colour").getByText("Blue", { exact: true }).click();
      await page.waitForFunction(
        (code) => document.querySelector('[data-testid="sku-code"]')?.textContent?.includes(code),
        seeded.blueCode,
        { timeout: TIMEOUT_MS },
      );
      assert((await text(price)).includes("1,800"), `the Blue price reads "${await text(price)}"`);
      assert(/out of stock/i.test(await text(page.getByTestId("availability"))), "Blue is not shown as out of stock");
      await screenshot(page, "product-blue");
    },
  },
  {
    name: "account address (validation error, then saved)",
    async run(page) {
      await page.getByTestId("nav-account").click();
      await page.getByTestId("address-form").waitFor({ timeout: TIMEOUT_MS });
      await settled(page);
      await fillAddress(page, "12345");
      const postal = page.getByTestId("field-error-postal_code");
      await postal.waitFor({ timeout: TIMEOUT_MS });
      assert((await text(postal)).length > 0, "the postal code violation has no message");
      const banner = page.getByTestId("address-form").locator("..").getByTestId("error-banner");
      assert((await banner.getAttribute("data-code")) === "INVALID_ARGUMENT", "the address error is not INVALID_ARGUMENT");
      await screenshot(page, "address-validation-error");

      await page.getByTestId("address-form").getByLabel("Postal code").fill("1500001");
      await page.getByTestId("address-form").getByRole("button", { name: "Save address" }).click();
      await page.getByText("Address saved.").waitFor({ timeout: TIMEOUT_MS });
      const value = await page.getByTestId("address-form").getByLabel("Postal code").inputValue();
      assert(value === "150-0001", `the saved postal code reads "${value}", not the normalised 150-0001`);
      assert((await page.getByTestId("field-error-postal_code").count()) === 0, "the old violation is still shown");
      await screenshot(page, "address-saved");
    },
  },
  {
    name: "sign out, refused sign-in, sign in",
    async run(page) {
      await page.getByTestId("nav-logout").click();
      await page.getByTestId("nav-login").waitFor({ timeout: TIMEOUT_MS });
      assert((await page.getByTestId("nav-account").count()) === 0, "still signed in after signing out");
      await screenshot(page, "signed-out");

      await page.getByTestId("nav-login").click();
      const form = page.getByTestId("login-form");
      await form.getByLabel("E-mail").fill(user.email);
      await form.getByLabel("Password").fill(`${user.password}-wrong`);
      await form.getByRole("button", { name: "Sign in" }).click();
      const banner = page.getByTestId("error-banner");
      await banner.waitFor({ timeout: TIMEOUT_MS });
      assert((await banner.getAttribute("data-code")) === "UNAUTHENTICATED",
        `a wrong password answered ${await banner.getAttribute("data-code")}`);
      const message = await text(page.getByTestId("error-message"));
      assert(message.length > 0 && !/could not be reached|something went wrong/i.test(message),
        `the refusal shows a generic message: "${message}"`);
      await screenshot(page, "login-refused");

      await form.getByLabel("Password").fill(user.password);
      await form.getByRole("button", { name: "Sign in" }).click();
      await page.getByTestId("nav-account").waitFor({ timeout: TIMEOUT_MS });
      await page.getByTestId("nav-account").click();
      await page.getByTestId("address-form").waitFor({ timeout: TIMEOUT_MS });
      await settled(page);
      const postal = await page.getByTestId("address-form").getByLabel("Postal code").inputValue();
      assert(postal === "150-0001", `after signing in again the address reads "${postal}"`);
      await screenshot(page, "signed-in-again");
    },
  },

  {
    name: "keyboard only: shop, search, open a product",
    async run(page) {
      if (!seeded) return;
      // From the top of the page, Tab and Enter alone reach the product; every stop on the way
      // shows where the focus is.
      await page.locator("body").focus();
      await tabTo(page, "the Shop link", (el) => el.tagName === "A" && el.textContent.trim() === "Shop");
      await page.keyboard.press("Enter");
      await page.getByRole("heading", { level: 1, name: "Shop" }).waitFor({ timeout: TIMEOUT_MS });
      await tabTo(page, "the search box", (el) => el.getAttribute("type") === "search" || el.getAttribute("role") === "searchbox");
      await page.keyboard.type(runId);
      await page.keyboard.press("Enter");
      await settled(page);
      await tabTo(page, "the seeded product's link", (el, name) => el.tagName === "A" && el.closest('[data-testid="product-card"]')?.textContent.includes(name), seeded.name);
      await screenshot(page, "keyboard-focus-on-product");
      await page.keyboard.press("Enter");
      await page.getByTestId("product-name").waitFor({ timeout: TIMEOUT_MS });
      await settled(page);
    },
  },

  {
    name: "add two variants to the cart",
    async run(page) {
      if (!seeded) {
        console.log("  (no seeded product: the cart, checkout and order steps are skipped)");
        return;
      }
      await openSeededProduct(page);
      assert((await page.getByTestId("cart-count").count()) === 0, "a new shopper's header counts cart items");
      // Red: two units of seven.
      await addToCart(page, 2, 2);
      // Blue is sold out: the button says so and cannot be pressed.
      await chooseColour(page, "Blue", seeded.blueCode);
      const button = page.getByTestId("add-to-cart-button");
      assert(await button.isDisabled(), "a sold-out variant can be added to the cart");
      assert((await text(button)) === "Unavailable", `the sold-out button reads "${await text(button)}"`);
      // Green: two units where only one exists (the cart will say so).
      await chooseColour(page, "Green", seeded.greenCode);
      await addToCart(page, 2, 4);
      const label = await page.getByTestId("nav-cart").getAttribute("aria-label");
      assert(label === "Cart 4 items", `the cart link is announced as "${label}"`);
      await screenshot(page, "added-to-cart");
    },
  },
  {
    name: "cart shows the lines with their statuses",
    async run(page) {
      if (!seeded) return;
      await nav(page, "nav-cart");
      await page.getByRole("heading", { level: 1, name: "Your cart" }).waitFor({ timeout: TIMEOUT_MS });
      await settled(page);
      const lines = page.getByTestId("cart-line");
      assert((await lines.count()) === 2, `the cart shows ${await lines.count()} lines, not 2`);
      const red = page.locator(`[data-testid="cart-line"][data-sku="${seeded.redCode}"]`);
      const green = page.locator(`[data-testid="cart-line"][data-sku="${seeded.greenCode}"]`);
      assert((await red.getAttribute("data-status")) === "AVAILABLE", `Red is ${await red.getAttribute("data-status")}`);
      assert((await green.getAttribute("data-status")) === "OVER_STOCK", `Green is ${await green.getAttribute("data-status")}`);
      const greenStatus = await text(green.getByTestId("line-status"));
      assert(/not enough stock/i.test(greenStatus) && /only 1 available/i.test(greenStatus),
        `the short line reads "${greenStatus}"`);
      assert((await text(red.getByTestId("line-total"))).includes("2,400"), "Red's line total is not ¥2,400");
      assert(await page.getByTestId("go-checkout").isDisabled(), "checkout is offered with a short line");
      assert(await page.getByTestId("checkout-blocked").isVisible(), "the reason checkout is blocked is not shown");
      await screenshot(page, "cart-over-stock");

      // By keyboard: Enter in the quantity field submits that line's change.
      await green.getByLabel(/^Quantity/).fill("1");
      await green.getByLabel(/^Quantity/).press("Enter");
      await waitForAttribute(green, "data-status", "AVAILABLE");
      assert((await text(page.getByTestId("cart-subtotal"))).includes("3,900"),
        `the subtotal reads "${await text(page.getByTestId("cart-subtotal"))}", not ¥3,900`);
      assert(await page.getByTestId("go-checkout").isEnabled(), "checkout stays blocked with every line available");
      await page.getByTestId("cart-count").filter({ hasText: /^3$/ }).waitFor({ timeout: TIMEOUT_MS });
      await screenshot(page, "cart-available");
    },
  },
  {
    name: "claim coupons",
    async run(page) {
      if (!seeded || !campaigns) {
        console.log("  (no seeded campaigns: the coupon step is skipped)");
        return;
      }
      await nav(page, "nav-coupons");
      await page.getByRole("heading", { level: 1, name: "Coupons" }).waitFor({ timeout: TIMEOUT_MS });
      await settled(page);
      const here = page.locator(`[data-testid="campaign"][data-campaign-id="${campaigns.browser.campaignId}"]`);
      const elsewhere = page.locator(`[data-testid="campaign"][data-campaign-id="${campaigns.elsewhere.campaignId}"]`);
      await here.waitFor({ timeout: TIMEOUT_MS });
      await elsewhere.waitFor({ timeout: TIMEOUT_MS });
      assert((await page.getByTestId("my-coupon").count()) === 0, "a new shopper already holds coupons");
      assert((await text(here.getByTestId("campaign-remaining"))).startsWith("50 of 50"), "the campaign's count is not 50 of 50");
      await screenshot(page, "coupons");

      // The shopper claims one campaign on another device while this page is open: claiming it
      // here too answers ALREADY_EXISTS, which the page reads as "you already have it".
      const coupons = await apiClient("coupon_service", "CouponService", await signInElsewhere());
      await coupons.claimCoupon({ campaignId: campaigns.elsewhere.campaignId });
      await elsewhere.getByTestId("claim").click();
      await elsewhere.locator('[data-result="already"]').waitFor({ timeout: TIMEOUT_MS });
      assert((await elsewhere.getByTestId("error-banner").count()) === 0, "ALREADY_EXISTS is shown as an error");

      await here.getByTestId("claim").click();
      await here.locator('[data-result="claimed"]').waitFor({ timeout: TIMEOUT_MS });
      assert(await here.locator(".claim-answer").evaluate((el) => el === document.activeElement),
        "the claim's answer does not take the focus from the button it replaced");
      await page.waitForFunction(
        () => document.querySelectorAll('[data-testid="my-coupon"][data-status="AVAILABLE"]').length === 2,
        null,
        { timeout: TIMEOUT_MS },
      );
      await here.getByTestId("campaign-remaining").filter({ hasText: /^49 of 50/ }).waitFor({ timeout: TIMEOUT_MS });
      await screenshot(page, "coupons-claimed");
    },
  },
  {
    name: "checkout with the saved address, SANDBOX and a coupon",
    async run(page) {
      if (!seeded) return;
      await nav(page, "nav-cart");
      await page.getByTestId("go-checkout").waitFor({ timeout: TIMEOUT_MS });
      await settled(page);
      await page.getByTestId("go-checkout").click();
      const form = page.getByTestId("checkout-form");
      await form.waitFor({ timeout: TIMEOUT_MS });
      await settled(page);
      // Prefilled from the account: the address saved (and normalised) earlier.
      assert((await text(page.getByTestId("saved-address"))).includes("150-0001"), "the saved address is not offered");
      assert(await form.getByLabel(/Your saved address/).isChecked(), "the saved address is not chosen by default");
      await form.getByLabel(/Sandbox payment/).check();
      assert((await text(page.getByTestId("checkout-subtotal"))).includes("3,900"), "the checkout subtotal is not ¥3,900");
      if (campaigns) {
        const choice = await form.locator("#coupon-select option").nth(1).getAttribute("value");
        await form.getByLabel("Use a coupon").selectOption(choice);
        await page.getByTestId("checkout-discount").waitFor({ timeout: TIMEOUT_MS });
        assert((await text(page.getByTestId("checkout-discount"))).includes("300"), "the coupon's ¥300 is not shown");
      }
      await screenshot(page, "checkout");

      // Green sells out while the shopper is on this page: the order is refused with the
      // server's message, the blocked line named, and a trace id for support.
      await setStock(seeded.greenSkuId, 0);
      await page.getByTestId("place-order").click();
      const banner = form.getByTestId("error-banner");
      await banner.waitFor({ timeout: TIMEOUT_MS });
      assert((await banner.getAttribute("data-code")) === "FAILED_PRECONDITION",
        `the sold-out checkout answered ${await banner.getAttribute("data-code")}`);
      assert((await banner.getAttribute("data-reason")) === "CART_NOT_CHECKOUTABLE",
        `the sold-out checkout's reason is ${await banner.getAttribute("data-reason")}`);
      const blocked = await text(banner.getByTestId("error-preconditions"));
      assert(blocked.includes("Colour: Green") && /out of stock/i.test(blocked), `the blocked line reads "${blocked}"`);
      const message = await text(banner.getByTestId("error-message"));
      assert(message.length > 0 && !/could not be reached|something went wrong/i.test(message),
        `the refusal shows a generic message: "${message}"`);
      assert(/trace id/i.test(await text(banner.getByTestId("error-trace"))), "the refusal shows no trace id");
      await screenshot(page, "checkout-refused");

      // The unit is back: pressing again is a new attempt (the refusal took the old key away),
      // so it is judged on the stock as it is now instead of replaying the refusal.
      await setStock(seeded.greenSkuId, 1);
      // A double click places one order: the form's idempotency key is the same for both.
      await page.getByTestId("place-order").dblclick();
      await page.waitForURL(/\/orders\/[0-9a-f-]{36}$/, { timeout: TIMEOUT_MS });
      placedOrderId = new URL(page.url()).pathname.split("/").pop();
      console.log(`  placed order ${placedOrderId}`);
    },
  },
  {
    name: "order page shows the order live",
    async run(page) {
      if (!seeded) return;
      await page.getByTestId("order").waitFor({ timeout: TIMEOUT_MS });
      await waitForAttribute(page.getByTestId("watch-state"), "data-watch", "live");
      // With a payment service the payment is attached soon after: wait for it, so the state
      // compared across the re-watch below is one that stays.
      if (fulfils()) {
        await orderReaches(page, "AWAITING_PAYMENT");
        await page.getByTestId("pay-link").waitFor({ timeout: TIMEOUT_MS });
      }
      const status = await page.getByTestId("order-status").getAttribute("data-status");
      assert(status === "PENDING" || status === "AWAITING_PAYMENT", `a new order is ${status}`);
      const streamed = await page.getByTestId("watch-state").getAttribute("data-streamed");
      assert(streamed === status, `the stream delivered ${streamed}, the page shows ${status}`);
      assert((await page.getByTestId("order-line").count()) === 2, "the order does not have two lines");
      assert((await text(page.getByTestId("order-subtotal"))).includes("3,900"), "the order subtotal is not ¥3,900");
      if (campaigns) {
        assert((await text(page.getByTestId("order-discount"))).includes("300"), "the order shows no ¥300 discount");
      }
      assert((await text(page.getByTestId("order-address"))).includes("150-0001"), "the order does not ship to the saved address");
      assert(/sandbox/i.test(await text(page.getByTestId("order-payment-method"))), "the order is not paid by SANDBOX");
      assert((await page.getByTestId("pay-link").count()) + (await page.getByTestId("payment-waiting").count()) === 1,
        "neither the Pay link nor the payment's wait is shown");
      // The checkout emptied the cart: the header no longer counts items.
      await page.waitForFunction(() => !document.querySelector('[data-testid="cart-count"]'), null, { timeout: TIMEOUT_MS });
      await screenshot(page, "order-pending");
      if (WATCH_MAX_SECONDS > 0) {
        // The BFF ends every watch UNAVAILABLE after WATCH_MAX_DURATION: the page watches again
        // and stays live, still showing the order.
        await page.waitForFunction(
          () => Number(document.querySelector('[data-testid="watch-state"]')?.getAttribute("data-watches")) >= 2,
          null,
          { timeout: TIMEOUT_MS + WATCH_MAX_SECONDS * 1000 },
        );
        await waitForAttribute(page.getByTestId("watch-state"), "data-watch", "live");
        assert((await page.getByTestId("order-status").getAttribute("data-status")) === status,
          "the order's status changed across a re-watch");
        assert((await page.getByTestId("error-banner").count()) === 0, "a re-watch shows an error");
      }
    },
  },
  {
    name: "order history shows it once",
    async run(page) {
      if (!seeded) return;
      await nav(page, "nav-orders");
      await page.getByRole("heading", { level: 1, name: "Your orders" }).waitFor({ timeout: TIMEOUT_MS });
      await settled(page);
      const rows = page.getByTestId("order-row");
      assert((await rows.count()) === 1, `the history lists ${await rows.count()} orders after one double-clicked checkout`);
      assert((await rows.first().getAttribute("data-order-id")) === placedOrderId, "the history lists another order");
      const status = await rows.first().getByTestId("order-status").getAttribute("data-status");
      assert(status === "PENDING" || status === "AWAITING_PAYMENT", `the history shows the order ${status}`);
      await screenshot(page, "orders");
      if (campaigns) {
        // The coupon the order used is USED, with a link to the order.
        await nav(page, "nav-coupons");
        await page.getByTestId("my-coupons").waitFor({ timeout: TIMEOUT_MS });
        await settled(page);
        const used = page.locator('[data-testid="my-coupon"][data-status="USED"]');
        assert((await used.count()) === 1, "the coupon the order used is not shown USED");
        await screenshot(page, "coupon-used");
        await used.getByRole("link").click();
      } else {
        await rows.first().getByRole("link").click();
      }
      await page.getByTestId("order").waitFor({ timeout: TIMEOUT_MS });
      assert(new URL(page.url()).pathname === `/orders/${placedOrderId}`, "the link opens another order");
    },
  },
  {
    name: "cancel: CANCELLED on screen, delivered by the watch",
    async run(page) {
      if (!seeded) return;
      await waitForAttribute(page.getByTestId("watch-state"), "data-watch", "live");
      await page.getByTestId("cancel-order").click();
      // The confirmation takes the focus, so a keyboard user answers it with Enter.
      await page.getByTestId("confirm-cancel").waitFor({ timeout: TIMEOUT_MS });
      assert(await page.getByTestId("confirm-cancel").evaluate((button) => button === document.activeElement),
        "the cancel confirmation does not take the focus");
      await page.keyboard.press("Enter");
      await waitForAttribute(page.getByTestId("order-status"), "data-status", "CANCELLED");
      // The stream itself delivered the terminal state and ended there (OK after a terminal
      // state): the page did not only show CancelOrder's answer.
      await waitForAttribute(page.getByTestId("watch-state"), "data-streamed", "CANCELLED");
      await waitForAttribute(page.getByTestId("watch-state"), "data-watch", "ended");
      assert((await page.locator('[data-testid="timeline"] li[data-status="CANCELLED"]').count()) === 1,
        "the timeline has no CANCELLED step");
      assert((await page.getByTestId("cancel-order").count()) === 0, "a cancelled order still offers Cancel");
      await screenshot(page, "order-cancelled");

      await nav(page, "nav-orders");
      await settled(page);
      const row = page.locator(`[data-testid="order-row"][data-order-id="${placedOrderId}"]`);
      await waitForAttribute(row.getByTestId("order-status"), "data-status", "CANCELLED");
      if (campaigns) {
        // Cancelling gave the coupon back.
        await nav(page, "nav-coupons");
        await page.getByTestId("my-coupons").waitFor({ timeout: TIMEOUT_MS });
        await settled(page);
        const available = page.locator('[data-testid="my-coupon"][data-status="AVAILABLE"]');
        assert((await available.count()) === 2, `${await available.count()} coupons are AVAILABLE after the cancel, not 2`);
        await screenshot(page, "coupon-restored");
      }
    },
  },
  {
    name: "wallet: a refused charge, then points added",
    async run(page) {
      if (!fulfils()) {
        console.log("  (no carrier or seeded product: the wallet, points and sandbox steps are skipped)");
        return;
      }
      await nav(page, "nav-wallet");
      await page.getByRole("heading", { level: 1, name: "Wallet" }).waitFor({ timeout: TIMEOUT_MS });
      await settled(page);
      assert((await text(page.getByTestId("wallet-balance"))) === "¥0", `a new wallet holds ${await text(page.getByTestId("wallet-balance"))}`);
      assert((await page.getByTestId("empty").count()) === 1, "the empty history has no empty state");
      await screenshot(page, "wallet-empty");

      // Over the payment service's limit per charge: refused with INVALID_ARGUMENT naming the
      // amount, shown beside the field, with the server's message and a trace id for support.
      const form = page.getByTestId("charge-form");
      await form.getByLabel("Points to add").fill("2000000");
      await form.getByTestId("charge-submit").click();
      const banner = form.getByTestId("error-banner");
      await banner.waitFor({ timeout: TIMEOUT_MS });
      assert((await banner.getAttribute("data-code")) === "INVALID_ARGUMENT",
        `an oversized charge answered ${await banner.getAttribute("data-code")}`);
      const message = await text(banner.getByTestId("error-message"));
      assert(message.length > 0 && !/could not be reached|something went wrong/i.test(message),
        `the refusal shows a generic message: "${message}"`);
      assert(/trace id/i.test(await text(banner.getByTestId("error-trace"))), "the refusal shows no trace id");
      assert((await text(page.getByTestId("field-error-amount"))).length > 0, "the amount's violation is not beside the field");
      assert((await text(page.getByTestId("wallet-balance"))) === "¥0", "a refused charge changed the balance");
      await screenshot(page, "wallet-refused");

      // A quick amount, by keyboard: the preset button, then Enter in the field.
      await form.getByRole("button", { name: "¥5,000" }).press("Enter");
      assert((await form.getByLabel("Points to add").inputValue()) === "5000", "the preset did not fill the amount");
      await form.getByLabel("Points to add").press("Enter");
      await form.getByTestId("notice").waitFor({ timeout: TIMEOUT_MS });
      await page.getByTestId("wallet-balance").filter({ hasText: /^¥5,000$/ }).waitFor({ timeout: TIMEOUT_MS });
      assert((await page.getByTestId("field-error-amount").count()) === 0, "the old violation is still shown");
      const entries = page.getByTestId("ledger-entry");
      await entries.first().waitFor({ timeout: TIMEOUT_MS });
      assert((await entries.count()) === 1, `the history lists ${await entries.count()} movements after one charge`);
      assert((await entries.first().getAttribute("data-kind")) === "CHARGE", "the movement is not a charge");
      await screenshot(page, "wallet-charged");
    },
  },
  {
    name: "add two variants again",
    async run(page) {
      if (!fulfils()) return;
      await openSeededProduct(page);
      await chooseColour(page, "Red", seeded.redCode);
      await addToCart(page, 1, 1);
      // Green's unit came back when the first order was cancelled.
      await chooseColour(page, "Green", seeded.greenCode);
      await addToCart(page, 1, 2);
      await screenshot(page, "added-again");
    },
  },
  {
    name: "checkout with points and the coupon",
    async run(page) {
      if (!fulfils()) return;
      await nav(page, "nav-cart");
      await page.getByTestId("go-checkout").waitFor({ timeout: TIMEOUT_MS });
      await settled(page);
      assert((await text(page.getByTestId("cart-subtotal"))).includes("2,700"), "the cart subtotal is not ¥2,700");
      await page.getByTestId("go-checkout").click();
      const form = page.getByTestId("checkout-form");
      await form.waitFor({ timeout: TIMEOUT_MS });
      await settled(page);
      await form.getByLabel(/Wallet points/).check();
      const cover = page.getByTestId("wallet-cover");
      await cover.waitFor({ timeout: TIMEOUT_MS });
      assert((await cover.getAttribute("data-covers")) === "true", "the wallet's ¥5,000 is said not to cover ¥2,700");
      assert((await text(page.getByTestId("checkout-wallet-balance"))) === "¥5,000", "the checkout shows another balance");
      if (campaigns) {
        const choice = await form.locator("#coupon-select option:not([value=''])").first().getAttribute("value");
        await form.getByLabel("Use a coupon").selectOption(choice);
        await page.getByTestId("checkout-discount").waitFor({ timeout: TIMEOUT_MS });
      }
      await screenshot(page, "checkout-points");
      await page.getByTestId("place-order").click();
      await page.waitForURL(/\/orders\/[0-9a-f-]{36}$/, { timeout: TIMEOUT_MS });
      pointsOrderId = new URL(page.url()).pathname.split("/").pop();
      console.log(`  placed order ${pointsOrderId} (points)`);
    },
  },
  {
    name: "the points order moves to FINISHED live",
    async run(page) {
      if (!fulfils()) return;
      await page.getByTestId("order").waitFor({ timeout: TIMEOUT_MS });
      assert(/wallet points/i.test(await text(page.getByTestId("order-payment-method"))), "the order is not paid with points");
      const total = campaigns ? "2,400" : "2,700";
      assert((await text(page.getByTestId("order-total"))).includes(total), `the order total is not ¥${total}`);
      await followToFinished(page, pointsOrderId, "points");
    },
  },
  {
    name: "history and wallet show the points order",
    async run(page) {
      if (!fulfils()) return;
      await nav(page, "nav-orders");
      await page.getByRole("heading", { level: 1, name: "Your orders" }).waitFor({ timeout: TIMEOUT_MS });
      await settled(page);
      const rows = page.getByTestId("order-row");
      assert((await rows.count()) === 2, `the history lists ${await rows.count()} orders, not the cancelled and the points one`);
      assert((await rows.first().getAttribute("data-order-id")) === pointsOrderId, "the newest order is not the points one");
      assert((await rows.first().getByTestId("order-status").getAttribute("data-status")) === "FINISHED",
        "the history does not show the points order FINISHED");
      await screenshot(page, "orders-finished");

      await nav(page, "nav-wallet");
      await settled(page);
      const left = campaigns ? "¥2,600" : "¥2,300";
      await page.getByTestId("wallet-balance").filter({ hasText: new RegExp(`^${left}$`) }).waitFor({ timeout: TIMEOUT_MS });
      const spend = page.locator(`[data-testid="ledger-entry"][data-kind="SPEND"][data-order-id="${pointsOrderId}"]`);
      await spend.waitFor({ timeout: TIMEOUT_MS });
      assert((await page.getByTestId("ledger-entry").count()) === 2, "the wallet history does not list the charge and the spend");
      await screenshot(page, "wallet-spent");
      await atPhoneWidth(page, "wallet-spent");
      // The spend links to the order it paid.
      await spend.getByRole("link").click();
      await page.getByTestId("order").waitFor({ timeout: TIMEOUT_MS });
      assert(new URL(page.url()).pathname === `/orders/${pointsOrderId}`, "the spend links to another order");
      await waitForAttribute(page.getByTestId("watch-state"), "data-watch", "ended");
    },
  },
];

/** The sandbox payment: another shopper pays on the payment service's page in a new tab. */
const sandboxSteps = [
  {
    name: "register another shopper and fill the cart",
    async run(page) {
      if (!fulfils()) {
        console.log("  (no carrier or seeded product: the sandbox journey is skipped)");
        return;
      }
      await registerInUi(page, BASE_URL, payer);
      await openSeededProduct(page);
      await chooseColour(page, "Red", seeded.redCode);
      await addToCart(page, 1, 1);
    },
  },
  {
    name: "checkout to a typed address with SANDBOX",
    async run(page) {
      if (!fulfils()) return;
      await nav(page, "nav-cart");
      await page.getByTestId("go-checkout").waitFor({ timeout: TIMEOUT_MS });
      await settled(page);
      await page.getByTestId("go-checkout").click();
      const form = page.getByTestId("checkout-form");
      await form.waitFor({ timeout: TIMEOUT_MS });
      await settled(page);
      // No saved address: the form asks for one.
      const shipping = page.getByTestId("shipping");
      await shipping.getByLabel("Recipient name").fill("佐藤 花子");
      await shipping.getByLabel("Country code").fill("JP");
      await shipping.getByLabel("Postal code").fill("5300001");
      await shipping.getByLabel("Prefecture").fill("大阪府");
      await shipping.getByLabel("City / ward").fill("大阪市北区");
      await shipping.getByLabel("Address line 1").fill("梅田1-1-1");
      await shipping.getByLabel("Phone number").fill("06-1234-5678");
      await form.getByLabel(/Sandbox payment/).check();
      await screenshot(page, "sandbox-checkout");
      await page.getByTestId("place-order").click();
      await page.waitForURL(/\/orders\/[0-9a-f-]{36}$/, { timeout: TIMEOUT_MS });
      sandboxOrderId = new URL(page.url()).pathname.split("/").pop();
      console.log(`  placed order ${sandboxOrderId} (sandbox)`);
    },
  },
  {
    name: "pay on the sandbox page in a new tab",
    async run(page) {
      if (!fulfils()) return;
      await page.getByTestId("order").waitFor({ timeout: TIMEOUT_MS });
      assert((await text(page.getByTestId("order-address"))).includes("530-0001"), "the order does not ship to the typed address");
      await orderReaches(page, "AWAITING_PAYMENT");
      const link = page.getByTestId("pay-link");
      await link.waitFor({ timeout: TIMEOUT_MS });
      assert((await link.getAttribute("target")) === "_blank", "the payment page does not open in a new tab");
      await screenshot(page, "sandbox-awaiting-payment");

      const [tab] = await Promise.all([page.context().waitForEvent("page"), link.click()]);
      await tab.getByRole("heading", { name: "Sandbox payment" }).waitFor({ timeout: TIMEOUT_MS });
      assert((await tab.textContent("main")).includes(sandboxOrderId), "the sandbox page is for another order");
      await screenshot(tab, "sandbox-page-pay");
      await tab.getByRole("button", { name: "Pay" }).click();
      await tab.getByRole("heading", { name: "Paid" }).waitFor({ timeout: TIMEOUT_MS });
      await screenshot(tab, "sandbox-page-paid");
      await tab.close();
      // Back in the storefront's tab, still signed in and watching: the payment arrived.
      await page.bringToFront();
    },
  },
  {
    name: "the sandbox order moves to FINISHED live",
    async run(page) {
      if (!fulfils()) return;
      await followToFinished(page, sandboxOrderId, "sandbox");
      await nav(page, "nav-orders");
      await page.getByRole("heading", { level: 1, name: "Your orders" }).waitFor({ timeout: TIMEOUT_MS });
      await settled(page);
      const rows = page.getByTestId("order-row");
      assert((await rows.count()) === 1, `the second shopper's history lists ${await rows.count()} orders`);
      assert((await rows.first().getByTestId("order-status").getAttribute("data-status")) === "FINISHED",
        "the history does not show the sandbox order FINISHED");
      await screenshot(page, "sandbox-orders");
    },
  },
  {
    name: "a card order without Stripe says card payment is unavailable",
    async run(page) {
      if (!fulfils()) return;
      await openSeededProduct(page);
      await chooseColour(page, "Red", seeded.redCode);
      await addToCart(page, 1, 1);
      await nav(page, "nav-cart");
      await page.getByTestId("go-checkout").waitFor({ timeout: TIMEOUT_MS });
      await settled(page);
      await page.getByTestId("go-checkout").click();
      const form = page.getByTestId("checkout-form");
      await form.waitFor({ timeout: TIMEOUT_MS });
      await settled(page);
      // The shipping address typed for the last order is not saved: type it again.
      const shipping = page.getByTestId("shipping");
      await shipping.getByLabel("Recipient name").fill("佐藤 花子");
      await shipping.getByLabel("Country code").fill("JP");
      await shipping.getByLabel("Postal code").fill("530-0001");
      await shipping.getByLabel("Prefecture").fill("大阪府");
      await shipping.getByLabel("City / ward").fill("大阪市北区");
      await shipping.getByLabel("Address line 1").fill("梅田1-1-1");
      await shipping.getByLabel("Phone number").fill("0612345678");
      await form.getByLabel(/Card \(Stripe\)/).check();
      await page.getByTestId("place-order").click();
      await page.waitForURL(/\/orders\/[0-9a-f-]{36}$/, { timeout: TIMEOUT_MS });
      await page.getByTestId("order").waitFor({ timeout: TIMEOUT_MS });
      // The BFF has no publishable key: no card form is faked, the step says why.
      const unavailable = page.getByTestId("card-unavailable");
      await unavailable.waitFor({ timeout: TIMEOUT_MS });
      assert(/card payment is not available/i.test(await text(unavailable)), "the card step does not say it is unavailable");
      assert((await page.getByTestId("card-form").count()) === 0, "a card form is shown without a publishable key");
      await screenshot(page, "card-unavailable");
      // The shopper gives up on this one.
      await page.getByTestId("cancel-order").click();
      await page.getByTestId("confirm-cancel").click();
      await orderReaches(page, "CANCELLED");
    },
  },
];

/** Whether the card journey runs: a Stripe BFF, and a system that pays and ships. */
const paysByCard = () => Boolean(STRIPE_URL && STRIPE_JS_URL && fulfils());

/** Checks out the cart to a typed address with Card (Stripe); the new order's id. */
async function checkoutByCard(page, label) {
  await nav(page, "nav-cart");
  await page.getByTestId("go-checkout").waitFor({ timeout: TIMEOUT_MS });
  await settled(page);
  await page.getByTestId("go-checkout").click();
  const form = page.getByTestId("checkout-form");
  await form.waitFor({ timeout: TIMEOUT_MS });
  await settled(page);
  const shipping = page.getByTestId("shipping");
  await shipping.getByLabel("Recipient name").fill("鈴木 一郎");
  await shipping.getByLabel("Country code").fill("JP");
  await shipping.getByLabel("Postal code").fill("4600008");
  await shipping.getByLabel("Prefecture").fill("愛知県");
  await shipping.getByLabel("City / ward").fill("名古屋市中区");
  await shipping.getByLabel("Address line 1").fill("栄3-4-5");
  await shipping.getByLabel("Phone number").fill("052-123-4567");
  await form.getByLabel(/Card \(Stripe\)/).check();
  await screenshot(page, `${label}-checkout`);
  await page.getByTestId("place-order").click();
  await page.waitForURL(/\/orders\/[0-9a-f-]{36}$/, { timeout: TIMEOUT_MS });
  const orderId = new URL(page.url()).pathname.split("/").pop();
  await page.getByTestId("order").waitFor({ timeout: TIMEOUT_MS });
  assert(/card/i.test(await text(page.getByTestId("order-payment-method"))), "the order is not paid by card");
  return orderId;
}

/** Waits for the card form Stripe.js mounted (localstripe's fields) and types `card` into it. */
async function typeCard(page, card) {
  await orderReaches(page, "AWAITING_PAYMENT");
  const form = page.getByTestId("card-form");
  await form.waitFor({ timeout: TIMEOUT_MS });
  const element = form.locator("#card-element");
  // localstripe's Element: its label and one text field per card detail.
  await element.getByPlaceholder("number", { exact: true }).waitFor({ timeout: TIMEOUT_MS });
  assert(/localstripe/.test(await text(element)), "the card form is not localstripe's");
  const loaded = await page.evaluate(() => [...document.scripts].map((script) => script.src));
  assert(loaded.includes(STRIPE_JS_URL), `Stripe.js was not loaded from ${STRIPE_JS_URL}: ${loaded.join(", ")}`);
  assert(await form.getByTestId("card-pay").isDisabled(), "Pay is offered before a card is typed");
  await element.getByPlaceholder("number", { exact: true }).fill(card.number);
  await element.getByPlaceholder("exp_month", { exact: true }).fill(card.expMonth);
  await element.getByPlaceholder("exp_year", { exact: true }).fill(card.expYear);
  await element.getByPlaceholder("cvc", { exact: true }).fill(card.cvc);
  // The Element reported the change: Pay is offered.
  await page.waitForFunction(() => document.querySelector('[data-testid="card-pay"]')?.disabled === false, null, {
    timeout: TIMEOUT_MS,
  });
}

/** The card payment: a STRIPE order paid in localstripe's card form, after a declined card. */
const cardSteps = [
  {
    name: "register a card shopper and fill the cart",
    async run(page) {
      if (!paysByCard()) {
        console.log("  (no Stripe BFF, carrier or seeded product: the card journey is skipped)");
        return;
      }
      await registerInUi(page, STRIPE_URL, cardholder);
      await openSeededProduct(page);
      await chooseColour(page, "Red", seeded.redCode);
      await addToCart(page, 1, 1);
    },
  },
  {
    name: "checkout with Card (Stripe) shows localstripe's card form",
    async run(page) {
      if (!paysByCard()) return;
      declinedOrderId = await checkoutByCard(page, "card-declined");
      console.log(`  placed order ${declinedOrderId} (card, to be declined)`);
      await typeCard(page, DECLINED_CARD);
      await screenshot(page, "card-declined-typed");
    },
  },
  {
    name: "a declined card shows Stripe's message",
    async run(page, journey) {
      if (!paysByCard()) return;
      await page.getByTestId("card-pay").click();
      // localstripe's decline, in Stripe's words, while the order still waits for its payment.
      const error = page.getByTestId("card-error");
      await error.waitFor({ timeout: TIMEOUT_MS });
      assert(/declined/i.test(await text(error)), `the decline reads "${await text(error)}"`);
      await page.getByTestId("card-declined").waitFor({ timeout: TIMEOUT_MS });
      assert((await page.getByTestId("card-pay").count()) === 0, "Pay is offered again after a decline");
      await screenshot(page, "card-declined");
      // The browser may log the declined confirmation's 402, as it does any 4xx answer: that
      // one is expected; any other console error still fails the step.
      const logged = journey.takeConsoleErrors((message) => /status of 402/.test(message));
      console.log(`  the browser logged ${logged.length} 402 answer(s) for the decline`);
    },
  },
  {
    name: "the declined payment cancels the order, nothing charged",
    async run(page) {
      if (!paysByCard()) return;
      // localstripe's signed payment_intent.payment_failed reached the payment service, which
      // failed the payment: the order is cancelled and its stock released.
      await orderReaches(page, "CANCELLED");
      await waitForAttribute(page.getByTestId("payment"), "data-payment-status", "FAILED");
      assert((await text(page.getByTestId("payment-status"))) === "Failed", "the payment is not shown as failed");
      assert(/declined/i.test(await text(page.getByTestId("payment-failure"))),
        `the failure reads "${await text(page.getByTestId("payment-failure"))}"`);
      assert((await page.getByTestId("cancel-order").count()) === 0, "a cancelled order offers Cancel");
      await screenshot(page, "card-declined-cancelled");
    },
  },
  {
    name: "check out again and pay with the Visa test card",
    async run(page) {
      if (!paysByCard()) return;
      await openSeededProduct(page);
      await chooseColour(page, "Red", seeded.redCode);
      await addToCart(page, 1, 1);
      cardOrderId = await checkoutByCard(page, "card");
      console.log(`  placed order ${cardOrderId} (card)`);
      await typeCard(page, VISA_CARD);
      await screenshot(page, "card-typed");
      await page.getByTestId("card-pay").click();
      await page.getByTestId("card-confirmed").waitFor({ timeout: TIMEOUT_MS });
      assert((await page.getByTestId("card-error").count()) === 0, "the accepted card shows an error");
      await screenshot(page, "card-confirmed");
    },
  },
  {
    name: "the card order moves to FINISHED live",
    async run(page) {
      if (!paysByCard()) return;
      // Paid by localstripe's signed payment_intent.succeeded, then shipped and delivered.
      await followToFinished(page, cardOrderId, "card");
      assert(/card/i.test(await text(page.getByTestId("payment-receipt"))), "the receipt does not name the card");
      await nav(page, "nav-orders");
      await page.getByRole("heading", { level: 1, name: "Your orders" }).waitFor({ timeout: TIMEOUT_MS });
      await settled(page);
      const statuses = await page.getByTestId("order-row").evaluateAll((rows) =>
        rows.map((row) => [row.getAttribute("data-order-id"), row.querySelector('[data-testid="order-status"]')?.getAttribute("data-status")]));
      assert(JSON.stringify(statuses) === JSON.stringify([[cardOrderId, "FINISHED"], [declinedOrderId, "CANCELLED"]]),
        `the card shopper's history reads ${JSON.stringify(statuses)}`);
      await screenshot(page, "card-orders");
    },
  },
];

/** The edges: CORS from other origins, and a rate-limited action. */
const edgeSteps = [
  {
    name: "CORS follows the allow-list",
    async run(page, journey) {
      if (!ALLOWED_ORIGIN_URL || !FOREIGN_ORIGIN_URL) {
        console.log("  (no other origins: the CORS step is skipped)");
        return;
      }
      const call = async (site) => {
        await page.goto(`${site}?api=${encodeURIComponent(BASE_URL)}`, { waitUntil: "domcontentloaded" });
        const result = page.locator("#result:not([data-outcome='pending'])");
        await result.waitFor({ timeout: TIMEOUT_MS });
        return {
          outcome: await result.getAttribute("data-outcome"),
          grpcStatus: await result.getAttribute("data-grpc-status"),
          requestId: await result.getAttribute("data-request-id"),
        };
      };
      // The allow-listed origin: the preflight passes and the page reads the answer, its
      // gRPC status and the exposed request id.
      const allowed = await call(ALLOWED_ORIGIN_URL);
      assert(allowed.outcome === "answered", `the allow-listed origin was ${allowed.outcome}`);
      assert(allowed.grpcStatus === "0", `the allow-listed origin read grpc-status ${allowed.grpcStatus}`);
      assert(allowed.requestId, "the allow-listed origin cannot read x-request-id");
      await screenshot(page, "cors-allowed");
      // Any other origin: the browser withholds the answer, and says why in the console.
      const foreign = await call(FOREIGN_ORIGIN_URL);
      assert(foreign.outcome === "blocked", `the foreign origin was ${foreign.outcome}`);
      const refusals = journey.takeConsoleErrors((message) => /CORS policy|ERR_FAILED/.test(message));
      assert(refusals.some((message) => /CORS policy/.test(message)), "the browser logged no CORS refusal");
      await screenshot(page, "cors-refused");
    },
  },
  {
    name: "a rate-limited action shows a friendly retry message",
    async run(page) {
      if (!LIMITED_URL || !LIMITED_WRITES) {
        console.log("  (no rate-limited BFF: the rate-limit step is skipped)");
        return;
      }
      await registerInUi(page, LIMITED_URL, hasty);
      await nav(page, "nav-wallet");
      await page.getByRole("heading", { level: 1, name: "Wallet" }).waitFor({ timeout: TIMEOUT_MS });
      await settled(page);
      const form = page.getByTestId("charge-form");
      // The budget's writes go through…
      for (let charge = 1; charge <= LIMITED_WRITES; charge += 1) {
        await form.getByLabel("Points to add").fill("1000");
        await form.getByTestId("charge-submit").click();
        await page.getByTestId("wallet-balance")
          .filter({ hasText: new RegExp(`^¥${(charge * 1000).toLocaleString("en-US")}$`) })
          .waitFor({ timeout: TIMEOUT_MS });
      }
      // …and the next is refused: RESOURCE_EXHAUSTED, read as "wait and try again" with the
      // server's RetryInfo delay, not as a failure of the shop.
      await form.getByLabel("Points to add").fill("1000");
      await form.getByTestId("charge-submit").click();
      const banner = form.getByTestId("error-banner");
      await banner.waitFor({ timeout: TIMEOUT_MS });
      assert((await banner.getAttribute("data-code")) === "RESOURCE_EXHAUSTED",
        `the write over the budget answered ${await banner.getAttribute("data-code")}`);
      const message = await text(banner.getByTestId("error-message"));
      assert(/too many requests/i.test(message) && /try again/i.test(message), `the rate limit reads "${message}"`);
      assert(!/could not be reached|something went wrong|over budget/i.test(message), `the rate limit reads "${message}"`);
      const retry = banner.getByTestId("retry-after");
      assert(Number(await retry.getAttribute("data-seconds")) >= 1, "no wait is given");
      assert(/You can try again in \d+ s\./.test(await text(retry)), `the wait reads "${await text(retry)}"`);
      const balance = `¥${(LIMITED_WRITES * 1000).toLocaleString("en-US")}`;
      assert((await text(page.getByTestId("wallet-balance"))) === balance, "the refused charge changed the balance");
      await screenshot(page, "rate-limited");
    },
  },
];

/** The journeys, each in a browser context (and so a session) of its own. */
const journeys = [
  { name: "shopper", steps },
  { name: "sandbox payment", steps: sandboxSteps },
  { name: "card payment", steps: cardSteps },
  { name: "edges", steps: edgeSteps },
];

// ------------------------------------------------------------------------------------ runner

/** A fresh browser context (its own profile, so no shared session) with images stubbed. */
async function openContext() {
  const profile = mkdtempSync(path.join(tmpdir(), "mercato-e2e-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    locale: "en-US",
    viewport: { width: 1280, height: 900 },
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  const origins = new Set([BASE_URL, LIMITED_URL, STRIPE_URL].filter(Boolean).map((url) => new URL(url).origin));
  await context.route("**/*", (route) =>
    route.request().resourceType() === "image" && !origins.has(new URL(route.request().url()).origin)
      ? route.fulfill({ status: 200, contentType: "image/png", body: PIXEL })
      : route.continue(),
  );
  return { context, profile };
}

async function main() {
  mkdirSync(ARTIFACTS, { recursive: true });
  let passed = 0;
  let failed = null;
  for (const journey of journeys) {
    if (failed) break;
    const { context, profile } = await openContext();
    const page = context.pages()[0] ?? (await context.newPage());
    page.setDefaultTimeout(TIMEOUT_MS);
    // The storefront's tab must stay free of console errors; other tabs (the sandbox's payment
    // page) are the payment service's, not checked here.
    const consoleErrors = [];
    page.on("console", (message) => {
      if (message.type() === "error") consoleErrors.push(message.text());
    });
    page.on("pageerror", (error) => consoleErrors.push(`uncaught: ${error.message}`));
    const state = {
      /** Removes and returns the console errors a step expects (e.g. a CORS refusal). */
      takeConsoleErrors(expected) {
        const taken = consoleErrors.filter(expected);
        const rest = consoleErrors.filter((message) => !expected(message));
        consoleErrors.splice(0, consoleErrors.length, ...rest);
        return taken;
      },
    };
    for (const step of journey.steps) {
      const name = `${journey.name}: ${step.name}`;
      console.log(`e2e: ${name}`);
      try {
        await step.run(page, state);
        assert(consoleErrors.length === 0, `console errors:\n    ${consoleErrors.join("\n    ")}`);
        passed += 1;
      } catch (error) {
        failed = { step: name, error };
        await screenshot(page, `FAILED-${name.replace(/[^a-z0-9]+/gi, "-")}`).catch(() => {});
        break;
      }
    }
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  }

  console.log(`screenshots: ${ARTIFACTS}`);
  if (failed) {
    console.error(`e2e: FAILED at step "${failed.step}": ${failed.error?.stack ?? failed.error}`);
    console.log(`storefront e2e: ${passed} passed, 1 failed`);
    process.exit(1);
  }
  console.log(`storefront e2e: ${passed} passed, 0 failed`);
}

main().catch((error) => {
  console.error(`e2e: FAILED before the journeys ran: ${error?.stack ?? error}`);
  process.exit(1);
});
