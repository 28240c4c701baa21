// The points wallet: the balance, "Add points" (a top-up, exactly once per idempotency key) and
// the history of movements, newest first, with "Load more" paging. One point pays one minor unit
// of the shop currency (one yen), so the page shows points as money.
//
// The payment service holds the wallet's rules (1-1,000,000 points per charge, the maximum
// balance): this page checks only that a whole number was typed and shows the server's refusals
// next to the field. The charge form keeps its idempotency key across retries of the same amount
// after a network or server failure (so a retry cannot add the points twice) and takes a new one
// after a success or a definitive refusal.

import { type FormEvent, useEffect, useRef, useState } from "react";
import { Link } from "react-router";
import { idempotencyKey, walletClient } from "../api/client";
import { fieldError, isRetryable, toUiError, type UiError } from "../api/errors";
import { ErrorBanner } from "../components/ErrorBanner";
import { Field } from "../components/Field";
import { Empty, Loading, Notice } from "../components/Status";
import type { LedgerEntry, Wallet } from "../gen/mercato/bff/v1/payment_types_pb";
import { LedgerEntryKind } from "../gen/mercato/common/v1/enums_pb";
import { formatTime, isoTime, LEDGER_KIND_LABEL, shortId } from "../lib/labels";
import { formatMoney, moneyOf, parseMoneyInput, shopCurrency } from "../lib/money";
import { useCall } from "../lib/useCall";
import { useTitle } from "../lib/useTitle";

const PAGE_SIZE = 10;

/** Amounts offered with one press (the field takes any amount). */
const PRESETS = [1_000n, 5_000n, 10_000n];

/** The violation paths of the charge's amount (a missing amount, or its minor units). */
const AMOUNT_FIELDS = ["amount", "amount.amount_minor", "amount.currency_code"] as const;

/** How a movement that names its order reads before the order's link ("Paid order 01A2…"). */
const ORDER_ENTRY_VERB: Record<LedgerEntryKind, string> = {
  [LedgerEntryKind.UNSPECIFIED]: "For",
  [LedgerEntryKind.CHARGE]: "Points added for",
  [LedgerEntryKind.SPEND]: "Paid",
  [LedgerEntryKind.REFUND]: "Refund of",
};

export function WalletPage() {
  useTitle("Wallet");
  const wallet = useCall(
    (signal) => walletClient.getWallet({}, { signal }).then((r) => r.wallet),
    [],
  );
  // Bumped after a charge, so the history (newest first) is read again from its first page.
  const [historyGeneration, setHistoryGeneration] = useState(0);

  return (
    <div className="page wallet">
      <h1>Wallet</h1>
      <div className="two-columns">
        <div>
          <section className="panel" aria-labelledby="balance-heading" data-testid="wallet">
            <h2 id="balance-heading">Balance</h2>
            {wallet.loading && !wallet.data ? (
              <Loading label="Loading your balance…" />
            ) : wallet.error ? (
              <>
                <ErrorBanner error={wallet.error} title="Your balance could not be loaded" />
                <button type="button" onClick={wallet.reload}>
                  Try again
                </button>
              </>
            ) : (
              <Balance wallet={wallet.data} />
            )}
          </section>
          <ChargeForm
            onCharged={(next) => {
              if (next) wallet.setData(next);
              setHistoryGeneration((g) => g + 1);
            }}
          />
        </div>
        <History generation={historyGeneration} />
      </div>
    </div>
  );
}

function Balance({ wallet }: { wallet: Wallet | undefined }) {
  return (
    <>
      <p className="wallet-balance" aria-live="polite" aria-atomic="true">
        <span className="visually-hidden">Your balance: </span>
        <span data-testid="wallet-balance">{formatMoney(wallet?.balance ?? moneyOf(0n, shopCurrency))}</span>
        <span className="muted"> in points</span>
      </p>
      <p className="muted">
        One point pays one yen. Choose <strong>Wallet points</strong> at checkout to pay from this balance.
        {wallet?.updateTime && (
          <>
            {" "}
            Last changed <time dateTime={isoTime(wallet.updateTime)}>{formatTime(wallet.updateTime)}</time>.
          </>
        )}
      </p>
    </>
  );
}

function ChargeForm({ onCharged }: { onCharged: (wallet: Wallet | undefined) => void }) {
  const [amount, setAmount] = useState("");
  const [localError, setLocalError] = useState<string | undefined>(undefined);
  const [error, setError] = useState<UiError | null>(null);
  const [busy, setBusy] = useState(false);
  const [done, setDone] = useState<string | null>(null);
  // One key per amount: kept across retries of the same charge, renewed when the amount changes.
  const key = useRef(idempotencyKey());
  const first = useRef(true);
  useEffect(() => {
    if (first.current) {
      first.current = false;
      return;
    }
    key.current = idempotencyKey();
  }, [amount]);

  const onSubmit = async (event: FormEvent) => {
    event.preventDefault();
    if (busy) return;
    setDone(null);
    setError(null);
    const money = parseMoneyInput(amount, shopCurrency);
    if (money === null) {
      setLocalError("Enter a whole number of points, e.g. 5000.");
      return;
    }
    setLocalError(undefined);
    setBusy(true);
    try {
      const response = await walletClient.chargePoints({ amount: money, idempotencyKey: key.current });
      key.current = idempotencyKey();
      setDone(`Added ${formatMoney(response.entry?.amount ?? money)} in points. Your balance is ${formatMoney(response.wallet?.balance)}.`);
      setAmount("");
      onCharged(response.wallet);
    } catch (thrown) {
      const failure = toUiError(thrown);
      // A refusal added nothing: the corrected retry is a new charge. After a network or server
      // failure the key stays, so pressing again cannot add the points twice.
      if (!isRetryable(failure)) key.current = idempotencyKey();
      setError(failure);
    } finally {
      setBusy(false);
    }
  };

  const amountError =
    localError ?? AMOUNT_FIELDS.map((path) => fieldError(error, path)).find((message) => message !== undefined);

  return (
    <section className="panel" aria-labelledby="charge-heading">
      <h2 id="charge-heading">Add points</h2>
      <form onSubmit={onSubmit} noValidate data-testid="charge-form">
        <div className="presets" role="group" aria-label="Quick amounts">
          {PRESETS.map((preset) => (
            <button
              key={preset.toString()}
              type="button"
              className="secondary"
              onClick={() => setAmount(preset.toString())}
              aria-pressed={amount === preset.toString()}
            >
              {formatMoney(moneyOf(preset, shopCurrency))}
            </button>
          ))}
        </div>
        <Field
          label="Points to add"
          name="amount"
          inputMode="numeric"
          autoComplete="off"
          value={amount}
          onChange={(e) => setAmount(e.target.value)}
          hint="From 1 to 1,000,000 points at a time."
          error={amountError}
          required
        />
        <ErrorBanner error={error} title="The points could not be added" shownFields={AMOUNT_FIELDS} />
        {done && <Notice>{done}</Notice>}
        <button type="submit" disabled={busy} data-testid="charge-submit">
          {busy ? "Adding points…" : "Add points"}
        </button>
      </form>
    </section>
  );
}

function History({ generation }: { generation: number }) {
  const [entries, setEntries] = useState<LedgerEntry[]>([]);
  const [nextToken, setNextToken] = useState("");
  const [loading, setLoading] = useState(true);
  const [loadingMore, setLoadingMore] = useState(false);
  const [error, setError] = useState<UiError | null>(null);
  const [retry, setRetry] = useState(0);

  useEffect(() => {
    const controller = new AbortController();
    setLoading(true);
    setError(null);
    walletClient.listLedgerEntries({ pageSize: PAGE_SIZE, pageToken: "" }, { signal: controller.signal }).then(
      (response) => {
        if (controller.signal.aborted) return;
        setEntries(response.entries);
        setNextToken(response.nextPageToken);
        setLoading(false);
      },
      (thrown: unknown) => {
        if (controller.signal.aborted) return;
        setError(toUiError(thrown));
        setLoading(false);
      },
    );
    return () => controller.abort();
  }, [generation, retry]);

  const loadMore = async () => {
    setLoadingMore(true);
    setError(null);
    try {
      const response = await walletClient.listLedgerEntries({ pageSize: PAGE_SIZE, pageToken: nextToken });
      // Entries made meanwhile shift the pages: never show one twice.
      setEntries((shown) => {
        const seen = new Set(shown.map((e) => e.entryId));
        return [...shown, ...response.entries.filter((e) => !seen.has(e.entryId))];
      });
      setNextToken(response.nextPageToken);
    } catch (thrown) {
      setError(toUiError(thrown));
    } finally {
      setLoadingMore(false);
    }
  };

  return (
    <section className="panel" aria-labelledby="history-heading">
      <h2 id="history-heading">History</h2>
      {loading && entries.length === 0 ? (
        <Loading label="Loading your history…" />
      ) : error && entries.length === 0 ? (
        <>
          <ErrorBanner error={error} title="Your history could not be loaded" />
          <button type="button" onClick={() => setRetry((r) => r + 1)}>
            Try again
          </button>
        </>
      ) : entries.length === 0 ? (
        <Empty>No movements yet: points you add and spend are listed here.</Empty>
      ) : (
        <>
          {/* Scrolls sideways inside the panel if a narrow screen cannot fit the four columns. */}
          <div className="table-scroll" role="region" aria-labelledby="history-heading" tabIndex={0}>
            <table className="table ledger" data-testid="ledger">
              <caption className="visually-hidden">Wallet movements, newest first</caption>
              <thead>
                <tr>
                  <th scope="col">When</th>
                  <th scope="col">What</th>
                  <th scope="col" className="numeric">
                    Points
                  </th>
                  <th scope="col" className="numeric">
                    Balance
                  </th>
                </tr>
              </thead>
              <tbody>
                {entries.map((entry) => (
                  <tr
                    key={entry.entryId}
                    data-testid="ledger-entry"
                    data-kind={LedgerEntryKind[entry.kind]}
                    data-order-id={entry.orderId}
                  >
                    <td>
                      <time dateTime={isoTime(entry.createTime)}>{formatTime(entry.createTime)}</time>
                    </td>
                    <td>
                      {entry.orderId ? (
                        <>
                          {ORDER_ENTRY_VERB[entry.kind]}{" "}
                          <Link to={`/orders/${entry.orderId}`}>order {shortId(entry.orderId)}</Link>
                        </>
                      ) : (
                        LEDGER_KIND_LABEL[entry.kind]
                      )}
                    </td>
                    <td className={`numeric ${(entry.amount?.amountMinor ?? 0n) < 0n ? "debit" : "credit"}`}>
                      {(entry.amount?.amountMinor ?? 0n) > 0n ? "+" : ""}
                      {formatMoney(entry.amount)}
                    </td>
                    <td className="numeric">{formatMoney(entry.balanceAfter)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          <ErrorBanner error={error} title="More movements could not be loaded" />
          {nextToken && (
            <div className="load-more">
              <button type="button" className="secondary" onClick={loadMore} disabled={loadingMore}
                data-testid="ledger-more">
                {loadingMore ? "Loading…" : "Load more"}
              </button>
            </div>
          )}
        </>
      )}
    </section>
  );
}
