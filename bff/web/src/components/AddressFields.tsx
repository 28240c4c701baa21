// The fields of a postal address (JP rules shown as hints), as the account and checkout pages
// edit it; violations are looked up under `shipping_address.<field>` or `<field>`.

import { fieldError, type UiError } from "../api/errors";
import type { PostalAddress } from "../gen/mercato/common/v1/address_pb";
import { PREFECTURES } from "../lib/prefectures";
import { Field } from "./Field";

export type AddressForm = Omit<PostalAddress, "$typeName" | "$unknown">;

export const EMPTY_ADDRESS: AddressForm = {
  recipientName: "",
  recipientNameKana: "",
  countryCode: "JP",
  postalCode: "",
  region: "",
  locality: "",
  addressLine1: "",
  addressLine2: "",
  phoneNumber: "",
};

/** The editable fields of an address (an empty form without one). */
export function fromAddress(address: PostalAddress | undefined): AddressForm {
  if (!address) return EMPTY_ADDRESS;
  const { $typeName: _t, $unknown: _u, ...fields } = address;
  return fields;
}

/** The field paths the fields show violations for (so a banner does not repeat them). */
export const ADDRESS_FIELDS = [
  "recipient_name",
  "recipient_name_kana",
  "country_code",
  "postal_code",
  "region",
  "locality",
  "address_line1",
  "address_line2",
  "phone_number",
];

/** A one-line summary for display, e.g. "山田 太郎, 150-0001 東京都 渋谷区 神南1-2-3". */
export function addressSummary(address: PostalAddress | undefined): string {
  if (!address) return "";
  const place = [address.postalCode, address.region, address.locality, address.addressLine1, address.addressLine2]
    .filter(Boolean)
    .join(" ");
  return `${address.recipientName}, ${place}${address.countryCode && address.countryCode !== "JP" ? `, ${address.countryCode}` : ""}`;
}

interface Props {
  form: AddressForm;
  onChange: (form: AddressForm) => void;
  error: UiError | null;
  /** Ids must differ when two address forms share a page. */
  listId?: string;
}

export function AddressFields({ form, onChange, error, listId = "prefectures" }: Props) {
  const set = (name: keyof AddressForm) => (e: { target: { value: string } }) =>
    onChange({ ...form, [name]: e.target.value });
  const err = (path: string) => fieldError(error, `shipping_address.${path}`) ?? fieldError(error, path);
  const jp = form.countryCode.trim().toUpperCase() === "JP";
  return (
    <>
      <Field label="Recipient name" name="recipient_name" required autoComplete="name"
        value={form.recipientName} onChange={set("recipientName")} error={err("recipient_name")} />
      {jp && (
        <Field label="Name in katakana" name="recipient_name_kana" hint="Optional, e.g. ヤマダ タロウ"
          value={form.recipientNameKana} onChange={set("recipientNameKana")}
          error={err("recipient_name_kana")} />
      )}
      <Field label="Country code" name="country_code" required autoComplete="country"
        hint="Two letters, e.g. JP" maxLength={2}
        value={form.countryCode} onChange={set("countryCode")} error={err("country_code")} />
      <Field label="Postal code" name="postal_code" required autoComplete="postal-code"
        hint={jp ? "Seven digits, e.g. 150-0001" : undefined}
        value={form.postalCode} onChange={set("postalCode")} error={err("postal_code")} />
      <Field label={jp ? "Prefecture" : "State / region"} name="region" required={jp}
        autoComplete="address-level1" list={jp ? listId : undefined}
        value={form.region} onChange={set("region")} error={err("region")} />
      <datalist id={listId}>
        {PREFECTURES.map((p) => (
          <option key={p} value={p} />
        ))}
      </datalist>
      <Field label="City / ward" name="locality" required autoComplete="address-level2"
        value={form.locality} onChange={set("locality")} error={err("locality")} />
      <Field label="Address line 1" name="address_line1" required autoComplete="address-line1"
        hint="Street, block and building number"
        value={form.addressLine1} onChange={set("addressLine1")} error={err("address_line1")} />
      <Field label="Address line 2" name="address_line2" autoComplete="address-line2"
        hint="Building, floor, room (optional)"
        value={form.addressLine2} onChange={set("addressLine2")} error={err("address_line2")} />
      <Field label="Phone number" name="phone_number" required type="tel" autoComplete="tel"
        hint={jp ? "e.g. 090-1234-5678" : "International format, e.g. +14155550100"}
        value={form.phoneNumber} onChange={set("phoneNumber")} error={err("phone_number")} />
    </>
  );
}
