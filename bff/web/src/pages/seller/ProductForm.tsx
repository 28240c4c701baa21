// The product form of the seller console: fields, options, images, attributes and (when
// creating) the initial SKUs; violations appear next to their fields.

import type { FormEvent } from "react";
import type { UiError } from "../../api/errors";
import { ErrorBanner } from "../../components/ErrorBanner";
import { Field } from "../../components/Field";
import { shopCurrency } from "../../lib/money";
import { emptySku, type ProductDraft, type SkuDraft, splitList } from "./draft";

interface Props {
  draft: ProductDraft;
  onChange: (draft: ProductDraft) => void;
  onSubmit: () => void;
  error: UiError | null;
  busy: boolean;
  submitLabel: string;
  withSkus: boolean;
}

/** The violation at exactly `product.<path>`. */
function at(error: UiError | null, path: string): string | undefined {
  return error?.fields.find((v) => v.field === `product.${path}` || v.field === path)?.description;
}

export function ProductForm({ draft, onChange, onSubmit, error, busy, submitLabel, withSkus }: Props) {
  const set = <K extends keyof ProductDraft>(key: K, value: ProductDraft[K]) =>
    onChange({ ...draft, [key]: value });
  const optionNames = draft.options.map((o) => o.name.trim()).filter(Boolean);
  const shown = error?.fields.map((v) => v.field).filter((f) => /^product\.(name|description|category|tags|options|images|attributes|skus)/.test(f)) ?? [];

  const updateSku = (index: number, sku: SkuDraft) =>
    set("skus", draft.skus.map((s, i) => (i === index ? sku : s)));

  return (
    <form
      className="product-form"
      noValidate
      data-testid="product-form"
      onSubmit={(e: FormEvent) => {
        e.preventDefault();
        onSubmit();
      }}
    >
      <ErrorBanner error={error} title="Could not save the product" shownFields={shown} />
      <Field label="Name" name="product.name" required maxLength={200} value={draft.name}
        onChange={(e) => set("name", e.target.value)} error={at(error, "name")} />
      <Field as="textarea" label="Description" name="product.description" rows={4} maxLength={10000}
        value={draft.description} onChange={(e) => set("description", e.target.value)}
        error={at(error, "description")} />
      <Field label="Category" name="product.category" required hint="Lower-case letters, digits and hyphens, e.g. ceramics"
        value={draft.category} onChange={(e) => set("category", e.target.value)} error={at(error, "category")} />
      <Field label="Tags" name="product.tags" hint="Comma-separated, e.g. mug, handmade"
        value={draft.tags} onChange={(e) => set("tags", e.target.value)} error={at(error, "tags")} />

      <fieldset className="group">
        <legend>Options (variants)</legend>
        {draft.options.map((option, i) => (
          <div className="row" key={i}>
            <Field label="Option name" name={`product.options[${i}].name`} value={option.name}
              onChange={(e) => set("options", draft.options.map((o, j) => (j === i ? { ...o, name: e.target.value } : o)))}
              error={at(error, `options[${i}].name`) ?? at(error, `options[${i}]`)} />
            <Field label="Values" name={`product.options[${i}].values`} hint="Comma-separated, e.g. S, M, L"
              value={option.values}
              onChange={(e) => set("options", draft.options.map((o, j) => (j === i ? { ...o, values: e.target.value } : o)))}
              error={at(error, `options[${i}].values`)} />
            <button type="button" className="secondary" onClick={() => set("options", draft.options.filter((_, j) => j !== i))}>
              Remove option {option.name || i + 1}
            </button>
          </div>
        ))}
        {draft.options.length < 3 && (
          <button type="button" className="secondary" onClick={() => set("options", [...draft.options, { name: "", values: "" }])}>
            Add option
          </button>
        )}
        {at(error, "options") && <p className="field-error">{at(error, "options")}</p>}
      </fieldset>

      <fieldset className="group">
        <legend>Images</legend>
        {draft.images.map((image, i) => (
          <div className="row" key={i}>
            <Field label="Image URL" name={`product.images[${i}].url`} type="url" placeholder="https://…" value={image.url}
              onChange={(e) => set("images", draft.images.map((m, j) => (j === i ? { ...m, url: e.target.value } : m)))}
              error={at(error, `images[${i}].url`)} />
            <Field label="Alt text" name={`product.images[${i}].alt_text`} value={image.altText}
              onChange={(e) => set("images", draft.images.map((m, j) => (j === i ? { ...m, altText: e.target.value } : m)))}
              error={at(error, `images[${i}].alt_text`)} />
            <label className="inline">
              <input type="radio" name="main-image" checked={draft.mainImage === i} onChange={() => set("mainImage", i)} /> Main image
            </label>
            <button type="button" className="secondary" onClick={() => set("images", draft.images.filter((_, j) => j !== i))}>
              Remove image {i + 1}
            </button>
          </div>
        ))}
        <button type="button" className="secondary" onClick={() => set("images", [...draft.images, { url: "", altText: "" }])}>
          Add image
        </button>
        {at(error, "images") && <p className="field-error">{at(error, "images")}</p>}
      </fieldset>

      <fieldset className="group">
        <legend>Attributes</legend>
        {draft.attributes.map((attr, i) => (
          <div className="row" key={i}>
            <Field label="Name" name={`product.attributes[${i}].key`} value={attr.key} placeholder="material"
              onChange={(e) => set("attributes", draft.attributes.map((a, j) => (j === i ? { ...a, key: e.target.value } : a)))}
              error={at(error, `attributes[${attr.key}]`)} />
            <Field label="Value" name={`product.attributes[${i}].value`} value={attr.value} placeholder="stoneware"
              onChange={(e) => set("attributes", draft.attributes.map((a, j) => (j === i ? { ...a, value: e.target.value } : a)))} />
            <button type="button" className="secondary" onClick={() => set("attributes", draft.attributes.filter((_, j) => j !== i))}>
              Remove attribute {attr.key || i + 1}
            </button>
          </div>
        ))}
        <button type="button" className="secondary" onClick={() => set("attributes", [...draft.attributes, { key: "", value: "" }])}>
          Add attribute
        </button>
      </fieldset>

      {withSkus && (
        <fieldset className="group">
          <legend>Variants (SKUs)</legend>
          {draft.skus.map((sku, i) => (
            <div className="row sku-row" key={i} data-testid={`sku-row-${i}`}>
              <Field label="SKU code" name={`product.skus[${i}].sku_code`} required value={sku.skuCode}
                placeholder="MUG-RED-M" onChange={(e) => updateSku(i, { ...sku, skuCode: e.target.value })}
                error={at(error, `skus[${i}].sku_code`)} />
              {optionNames.map((name) => {
                const values = splitList(draft.options.find((o) => o.name.trim() === name)?.values ?? "");
                const id = `sku-${i}-opt-${name}`;
                return (
                  <div className="field" key={name}>
                    <label htmlFor={id}>{name}</label>
                    <select id={id} value={sku.optionValues[name] ?? ""}
                      onChange={(e) => updateSku(i, { ...sku, optionValues: { ...sku.optionValues, [name]: e.target.value } })}>
                      <option value="">Choose…</option>
                      {values.map((v) => (
                        <option key={v} value={v}>{v}</option>
                      ))}
                    </select>
                  </div>
                );
              })}
              <Field label={`Price (${shopCurrency})`} name={`product.skus[${i}].price`} required inputMode="decimal"
                value={sku.price} onChange={(e) => updateSku(i, { ...sku, price: e.target.value })}
                error={at(error, `skus[${i}].price`) ?? at(error, `skus[${i}].option_values`)} />
              <label className="inline">
                <input type="checkbox" checked={sku.active} onChange={(e) => updateSku(i, { ...sku, active: e.target.checked })} /> Active
              </label>
              {draft.skus.length > 1 && (
                <button type="button" className="secondary" onClick={() => set("skus", draft.skus.filter((_, j) => j !== i))}>
                  Remove SKU {sku.skuCode || i + 1}
                </button>
              )}
            </div>
          ))}
          <button type="button" className="secondary" onClick={() => set("skus", [...draft.skus, emptySku()])}>
            Add SKU
          </button>
          {at(error, "skus") && <p className="field-error">{at(error, "skus")}</p>}
        </fieldset>
      )}

      <button type="submit" disabled={busy} data-testid="product-submit">
        {busy ? "Saving…" : submitLabel}
      </button>
    </form>
  );
}
