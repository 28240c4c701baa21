// One SKU's stock in the seller console: the level, an adjustment guarded by the stock version
// last read, and the history of changes.

import { type FormEvent, useRef, useState } from "react";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { idempotencyKey, sellerClient } from "../../api/client";
import { fieldError, toUiError, type UiError } from "../../api/errors";
import { ErrorBanner } from "../../components/ErrorBanner";
import { Field } from "../../components/Field";
import { Empty, Loading, Notice } from "../../components/Status";
import { StockChangeKind, type Sku } from "../../gen/mercato/bff/v1/catalog_types_pb";
import { formatMoney } from "../../lib/money";
import { useCall } from "../../lib/useCall";
import { localError } from "./draft";

const KIND_LABELS: Record<StockChangeKind, string> = {
  [StockChangeKind.UNSPECIFIED]: "Change",
  [StockChangeKind.ADJUSTMENT]: "Adjustment",
  [StockChangeKind.RESERVATION]: "Reserved",
  [StockChangeKind.COMMIT]: "Sold",
  [StockChangeKind.RELEASE]: "Released",
  [StockChangeKind.EXPIRY]: "Hold expired",
  [StockChangeKind.RETURN]: "Returned",
};

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "short", timeStyle: "short" });

export function StockPanel({ sku }: { sku: Sku }) {
  const stock = useCall((signal) => sellerClient.getSkuStock({ skuId: sku.skuId }, { signal }), [sku.skuId]);
  const [historyVersion, setHistoryVersion] = useState(0);
  const history = useCall(
    (signal) => sellerClient.listStockHistory({ skuId: sku.skuId, pageSize: 10 }, { signal }),
    [sku.skuId, historyVersion],
  );
  const [onHand, setOnHand] = useState("");
  const [reason, setReason] = useState("");
  const [error, setError] = useState<UiError | null>(null);
  const [notice, setNotice] = useState("");
  const [busy, setBusy] = useState(false);
  const key = useRef(idempotencyKey());
  const level = stock.data?.stock;

  const onSubmit = async (event: FormEvent) => {
    event.preventDefault();
    if (!level) return;
    const quantity = onHand.trim();
    if (!/^\d+$/.test(quantity)) {
      setError(localError("on_hand", "Enter a whole number of units"));
      return;
    }
    setBusy(true);
    setError(null);
    setNotice("");
    try {
      const response = await sellerClient.adjustStock({
        skuId: sku.skuId,
        onHand: BigInt(quantity),
        expectedVersion: level.version,
        reason: reason.trim(),
        idempotencyKey: key.current,
      });
      key.current = idempotencyKey();
      if (response.stock) stock.setData({ ...stock.data!, stock: response.stock });
      setOnHand("");
      setReason("");
      setNotice("Stock updated.");
      setHistoryVersion((v) => v + 1);
    } catch (e) {
      const ui = toUiError(e);
      if (ui.code === Code.Aborted) {
        // Someone changed the stock since it was read: show the current level to decide again.
        ui.message = `${ui.message}. The stock changed since you loaded it; the current level is shown, please check and try again.`;
        key.current = idempotencyKey();
        stock.reload();
      }
      setError(ui);
    } finally {
      setBusy(false);
    }
  };

  return (
    <section className="panel stock" aria-label={`Stock of ${sku.skuCode}`} data-testid={`stock-${sku.skuCode}`}>
      <h3>
        {sku.skuCode} <span className="muted">{formatMoney(sku.price)}</span>
        {!sku.active && <span className="badge">Inactive</span>}
      </h3>
      {Object.keys(sku.optionValues).length > 0 && (
        <p className="muted">
          {Object.entries(sku.optionValues).map(([k, v]) => `${k}: ${v}`).join(" · ")}
        </p>
      )}
      {stock.loading ? (
        <Loading label="Loading stock…" />
      ) : stock.error ? (
        <ErrorBanner error={stock.error} title="Stock could not be loaded" />
      ) : level ? (
        <dl className="stock-level" data-testid="stock-level">
          <div><dt>On hand</dt><dd>{level.onHand.toString()}</dd></div>
          <div><dt>Reserved</dt><dd>{level.reserved.toString()}</dd></div>
          <div><dt>Available</dt><dd data-testid="stock-available">{level.available.toString()}</dd></div>
          <div><dt>Version</dt><dd>{level.version.toString()}</dd></div>
        </dl>
      ) : null}
      {notice && <Notice>{notice}</Notice>}
      <ErrorBanner error={error} title="Could not adjust the stock" shownFields={["on_hand", "reason"]} />
      <form className="row" onSubmit={onSubmit} noValidate>
        <Field label="New on-hand quantity" name="on_hand" inputMode="numeric" required value={onHand}
          onChange={(e) => {
            key.current = idempotencyKey();
            setOnHand(e.target.value);
          }} error={fieldError(error, "on_hand")} />
        <Field label="Reason" name="reason" required maxLength={200} placeholder="received 20 units"
          value={reason} onChange={(e) => {
            key.current = idempotencyKey();
            setReason(e.target.value);
          }} error={fieldError(error, "reason")} />
        <button type="submit" disabled={busy || !level}>{busy ? "Saving…" : "Set stock"}</button>
      </form>
      <details>
        <summary>Stock history</summary>
        {history.loading ? (
          <Loading label="Loading history…" />
        ) : history.error ? (
          <ErrorBanner error={history.error} title="History could not be loaded" />
        ) : history.data && history.data.entries.length > 0 ? (
          <table className="table">
            <thead>
              <tr><th scope="col">When</th><th scope="col">What</th><th scope="col">On hand</th><th scope="col">Reserved</th><th scope="col">Reason</th></tr>
            </thead>
            <tbody>
              {history.data.entries.map((h) => (
                <tr key={h.entryId}>
                  <td>{h.createTime ? dateTime.format(timestampDate(h.createTime)) : ""}</td>
                  <td>{KIND_LABELS[h.kind] ?? "Change"}</td>
                  <td>{h.onHandBefore.toString()} → {h.onHandAfter.toString()}</td>
                  <td>{h.reservedBefore.toString()} → {h.reservedAfter.toString()}</td>
                  <td>{h.reason || h.orderId}</td>
                </tr>
              ))}
            </tbody>
          </table>
        ) : (
          <Empty>No changes yet.</Empty>
        )}
      </details>
    </section>
  );
}
