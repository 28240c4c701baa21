// The seller's product form state and its conversion to the API's ProductInput / SkuInput.

import type { MessageInitShape } from "@bufbuild/protobuf";
import type { UiError } from "../../api/errors";
import type { Product, ProductInputSchema, SkuInputSchema } from "../../gen/mercato/bff/v1/catalog_types_pb";
import { moneyInputValue, parseMoneyInput } from "../../lib/money";

export interface SkuDraft {
  skuCode: string;
  optionValues: Record<string, string>;
  price: string;
  active: boolean;
}

export interface ProductDraft {
  name: string;
  description: string;
  category: string;
  /** Comma-separated. */
  tags: string;
  attributes: Array<{ key: string; value: string }>;
  /** Option values comma-separated. */
  options: Array<{ name: string; values: string }>;
  images: Array<{ url: string; altText: string }>;
  /** Index of the main image. */
  mainImage: number;
  skus: SkuDraft[];
}

export const emptySku = (): SkuDraft => ({ skuCode: "", optionValues: {}, price: "", active: true });

export const emptyDraft = (): ProductDraft => ({
  name: "",
  description: "",
  category: "",
  tags: "",
  attributes: [],
  options: [],
  images: [],
  mainImage: 0,
  skus: [emptySku()],
});

export function splitList(text: string): string[] {
  return text
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
}

/** The draft of an existing product (SKUs are edited separately). */
export function draftOf(product: Product): ProductDraft {
  const main = product.images.findIndex((i) => i.main);
  return {
    name: product.name,
    description: product.description,
    category: product.category,
    tags: product.tags.join(", "),
    attributes: Object.entries(product.attributes).map(([key, value]) => ({ key, value })),
    options: product.options.map((o) => ({ name: o.name, values: o.values.join(", ") })),
    images: product.images.map((i) => ({ url: i.url, altText: i.altText })),
    mainImage: Math.max(0, main),
    skus: product.skus.map((s) => ({
      skuCode: s.skuCode,
      optionValues: { ...s.optionValues },
      price: moneyInputValue(s.price),
      active: s.active,
    })),
  };
}

/** A violation found before sending (same shape as the server's, so forms show both alike). */
export function localError(field: string, description: string): UiError {
  return {
    code: 3,
    codeName: "INVALID_ARGUMENT",
    message: "Please correct the highlighted fields.",
    reason: "VALIDATION_FAILED",
    fields: [{ field, description }],
    traceId: undefined,
    requestId: undefined,
    retryAfterSeconds: undefined,
  };
}

type SkuInit = MessageInitShape<typeof SkuInputSchema>;
type ProductInit = MessageInitShape<typeof ProductInputSchema>;

/** A SKU as SkuInput, or the violation that stops it being sent. */
export function skuInput(
  sku: SkuDraft,
  optionNames: string[],
  path: string,
): { input: SkuInit } | { error: UiError } {
  const price = parseMoneyInput(sku.price);
  if (!price) return { error: localError(`${path}.price`, "Enter a price, e.g. 1200") };
  const optionValues: Record<string, string> = {};
  for (const name of optionNames) optionValues[name] = sku.optionValues[name] ?? "";
  return { input: { skuCode: sku.skuCode.trim(), optionValues, price, active: sku.active } };
}

/** The draft as ProductInput (with SKUs when `withSkus`), or the first local violation. */
export function productInput(
  draft: ProductDraft,
  withSkus: boolean,
): { input: ProductInit } | { error: UiError } {
  const options = draft.options
    .filter((o) => o.name.trim() || o.values.trim())
    .map((o) => ({ name: o.name.trim(), values: splitList(o.values) }));
  const attributes: Record<string, string> = {};
  for (const { key, value } of draft.attributes) if (key.trim()) attributes[key.trim()] = value.trim();
  const images = draft.images
    .filter((i) => i.url.trim())
    .map((i, index) => ({ url: i.url.trim(), altText: i.altText.trim(), main: index === draft.mainImage }));
  const skus: SkuInit[] = [];
  if (withSkus) {
    const names = options.map((o) => o.name);
    for (const [i, sku] of draft.skus.entries()) {
      const result = skuInput(sku, names, `product.skus[${i}]`);
      if ("error" in result) return result;
      skus.push(result.input);
    }
  }
  return {
    input: {
      name: draft.name.trim(),
      description: draft.description,
      category: draft.category.trim(),
      tags: splitList(draft.tags),
      attributes,
      options,
      images,
      skus,
    },
  };
}
