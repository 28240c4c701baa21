// Money as the API carries it (an ISO 4217 code and an integer count of minor units) to and from
// what people read and type. Exact: amounts stay bigint and are formatted from a decimal string,
// never through a float.

import { create } from "@bufbuild/protobuf";
import { type Money, MoneySchema } from "../gen/mercato/common/v1/money_pb";

/** The shop's currency (a shop runs in one; VITE_SHOP_CURRENCY, default JPY). */
export const shopCurrency: string =
  (import.meta.env.VITE_SHOP_CURRENCY as string | undefined) || "JPY";

const digitsCache = new Map<string, number>();

/** How many digits the currency's minor unit has (JPY 0, USD 2). */
export function fractionDigits(currency: string): number {
  let digits = digitsCache.get(currency);
  if (digits === undefined) {
    try {
      digits =
        new Intl.NumberFormat("en", { style: "currency", currency }).resolvedOptions()
          .maximumFractionDigits ?? 2;
    } catch {
      digits = 2;
    }
    digitsCache.set(currency, digits);
  }
  return digits;
}

/** The amount as an exact decimal string in major units, e.g. 1234n USD → "12.34". */
export function toDecimalString(amountMinor: bigint, currency: string): string {
  const digits = fractionDigits(currency);
  const negative = amountMinor < 0n;
  const abs = (negative ? -amountMinor : amountMinor).toString();
  if (digits === 0) return (negative ? "-" : "") + abs;
  const padded = abs.padStart(digits + 1, "0");
  const whole = padded.slice(0, padded.length - digits);
  const fraction = padded.slice(padded.length - digits);
  return `${negative ? "-" : ""}${whole}.${fraction}`;
}

/** Formats Money for display with Intl, e.g. "¥1,200" or "$12.34". */
export function formatMoney(money: Money | undefined, locale?: string): string {
  if (!money || !money.currencyCode) return "—";
  const decimal = toDecimalString(money.amountMinor, money.currencyCode);
  try {
    const format = new Intl.NumberFormat(locale, {
      style: "currency",
      currency: money.currencyCode,
    }).format as (value: string) => string;
    // Intl formats a decimal string exactly (no float rounding for large amounts).
    return format(decimal);
  } catch {
    return `${decimal} ${money.currencyCode}`;
  }
}

/** Formats a price range, collapsing equal ends. */
export function formatPriceRange(min: Money | undefined, max: Money | undefined): string {
  if (!min) return formatMoney(max);
  if (!max || max.amountMinor === min.amountMinor) return formatMoney(min);
  return `${formatMoney(min)} – ${formatMoney(max)}`;
}

/**
 * Parses what a person typed ("1200", "12.34", "1,200") into minor units of the currency;
 * null when it is not a non-negative amount with at most the currency's fraction digits.
 */
export function parseMoneyInput(text: string, currency: string = shopCurrency): Money | null {
  const cleaned = text.trim().replace(/[,\s_]/g, "");
  if (cleaned === "") return null;
  const digits = fractionDigits(currency);
  const match = /^(\d+)(?:\.(\d+))?$/.exec(cleaned);
  if (!match) return null;
  const whole = match[1] ?? "0";
  const fraction = match[2] ?? "";
  if (fraction.length > digits) return null;
  const amountMinor = BigInt(whole + fraction.padEnd(digits, "0"));
  return create(MoneySchema, { currencyCode: currency, amountMinor });
}

/** Money as the text of an input field (the inverse of parseMoneyInput). */
export function moneyInputValue(money: Money | undefined): string {
  return money ? toDecimalString(money.amountMinor, money.currencyCode) : "";
}

/** Money of `amountMinor` minor units of `currency`. */
export function moneyOf(amountMinor: bigint, currency: string): Money {
  return create(MoneySchema, { currencyCode: currency, amountMinor });
}
