#!/usr/bin/env node
// Browser journeys through the storefront served by a running BFF, with Debian's chromium
// driven by playwright-core (no browser download).
//
//   BASE_URL           the BFF serving bff/web/dist (default http://127.0.0.1:8080)
//   E2E_ARTIFACTS      where screenshots go (default bff/web/e2e/artifacts)
//   CHROMIUM_PATH      the browser (default /usr/bin/chromium)
//   SEED_SELLER_TOKEN  optional access token of a seller: a product with two variants is created
//                      and published first (through SellerService, the public API), and the
//                      catalog and product steps assert on it; without it they accept an empty
//                      catalog.
//   E2E_API_URL        where seeding calls the BFF (default BASE_URL; set it to the BFF when
//                      BASE_URL is Vite's dev server)
//
// Journeys: home → register (a validation error first) → search → product detail with a
// variant switch → account address (a validation error first, then saved and normalised) →
// sign out → a refused sign-in shows the server's message → sign in again. The console must stay
// free of errors throughout. Exits non-zero on the first failure, naming the step.

import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const BASE_URL = (process.env.BASE_URL || "http://127.0.0.1:8080").replace(/\/+$/, "");
const ARTIFACTS = path.resolve(process.env.E2E_ARTIFACTS || path.join(here, "artifacts"));
const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const SEED_TOKEN = process.env.SEED_SELLER_TOKEN || "";
const API_URL = (process.env.E2E_API_URL || BASE_URL).replace(/\/+$/, "");
const TIMEOUT_MS = Number(process.env.E2E_TIMEOUT_MS || 15_000);

const runId = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
const user = {
  email: `e2e-${runId}@example.com`,
  password: `e2e-pass-${runId}`,
  displayName: `E2E ${runId}`,
};
// A 1x1 PNG answered for every image outside BASE_URL (product images live on a CDN): the run
// stays hermetic, and an unreachable image host cannot add console errors.
const PIXEL = Buffer.from(
  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==",
  "base64",
);

/** What the journeys need to know about the seeded product, when there is one. */
let seeded = null;

// ------------------------------------------------------------------------------------ seeding

/** Creates and publishes a product with two variants (Red in stock, Blue sold out). */
async function seedProduct() {
  let modules;
  try {
    modules = await Promise.all([
      import("@connectrpc/connect"),
      import("@connectrpc/connect-web"),
      import("./gen/mercato/bff/v1/seller_service_pb.js"),
    ]);
  } catch (error) {
    throw new Error(`e2e/gen is missing: run \`npm run generate\` first (${error.message})`);
  }
  const [{ createClient }, { createGrpcWebTransport }, { SellerService }] = modules;
  const transport = createGrpcWebTransport({
    baseUrl: API_URL,
    interceptors: [
      (next) => (req) => {
        req.header.set("authorization", `Bearer ${SEED_TOKEN}`);
        return next(req);
      },
    ],
  });
  const seller = createClient(SellerService, transport);
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
      options: [{ name: "Colour", values: ["Red", "Blue"] }],
      skus: [
        { skuCode: `E2E-${runId}-RED`, optionValues: { Colour: "Red" }, price: money(1200), active: true },
        { skuCode: `E2E-${runId}-BLUE`, optionValues: { Colour: "Blue" }, price: money(1800), active: true },
      ],
    },
  });
  const red = product.skus.find((s) => s.optionValues.Colour === "Red");
  const { stock } = await seller.getSkuStock({ skuId: red.skuId });
  await seller.adjustStock({
    skuId: red.skuId,
    onHand: 7n,
    expectedVersion: stock.version,
    reason: "e2e seed",
    idempotencyKey: `e2e-stock-${runId}`,
  });
  await seller.publishProduct({ productId: product.productId });
  return { productId: product.productId, name, redCode: `E2E-${runId}-RED`, blueCode: `E2E-${runId}-BLUE` };
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
];

// ------------------------------------------------------------------------------------ runner

async function main() {
  mkdirSync(ARTIFACTS, { recursive: true });
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
  const origin = new URL(BASE_URL).origin;
  await context.route("**/*", (route) =>
    route.request().resourceType() === "image" && new URL(route.request().url()).origin !== origin
      ? route.fulfill({ status: 200, contentType: "image/png", body: PIXEL })
      : route.continue(),
  );
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(TIMEOUT_MS);
  const consoleErrors = [];
  page.on("console", (message) => {
    if (message.type() === "error") consoleErrors.push(message.text());
  });
  page.on("pageerror", (error) => consoleErrors.push(`uncaught: ${error.message}`));

  let passed = 0;
  let failed = null;
  for (const step of steps) {
    console.log(`e2e: ${step.name}`);
    try {
      await step.run(page);
      assert(consoleErrors.length === 0, `console errors:\n    ${consoleErrors.join("\n    ")}`);
      passed += 1;
    } catch (error) {
      failed = { step: step.name, error };
      await screenshot(page, `FAILED-${step.name.replace(/[^a-z0-9]+/gi, "-")}`).catch(() => {});
      break;
    }
  }
  await context.close();
  rmSync(profile, { recursive: true, force: true });

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
