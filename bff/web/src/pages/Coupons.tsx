// Coupons: the campaigns running now (public), each with "Claim" — first come, first served, one
// per person — and, when signed in, the coupons the caller holds with their state. A claim the
// server answers ALREADY_EXISTS (claimed before, e.g. on another device) reads "you already have
// it", not as an error.

import { useEffect, useRef, useState } from "react";
import { Link, useLocation } from "react-router";
import { Code } from "@connectrpc/connect";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { couponClient } from "../api/client";
import { toUiError, type UiError } from "../api/errors";
import { useSession } from "../auth/session";
import { ErrorBanner } from "../components/ErrorBanner";
import { Empty, Loading } from "../components/Status";
import type { CouponCampaign, UserCoupon } from "../gen/mercato/bff/v1/coupon_types_pb";
import { UserCouponStatus } from "../gen/mercato/common/v1/enums_pb";
import { couponRule, formatDate, formatTime, isoTime, shortId, USER_COUPON_LABEL } from "../lib/labels";
import { useCall } from "../lib/useCall";
import { useTitle } from "../lib/useTitle";

/** How a claim ended, per campaign. */
type ClaimResult = { kind: "claimed" } | { kind: "already" } | { kind: "error"; error: UiError };

export function CouponsPage() {
  useTitle("Coupons");
  const session = useSession();
  const location = useLocation();
  const user = session?.claims.sub ?? "";
  const campaigns = useCall(
    (signal) => couponClient.listCampaigns({ pageSize: 50 }, { signal }).then((r) => r.campaigns),
    [],
  );
  const mine = useCall(
    (signal) =>
      user
        ? couponClient.listMyCoupons({ pageSize: 100 }, { signal }).then((r) => r.userCoupons)
        : Promise.resolve<UserCoupon[]>([]),
    [user],
  );
  const [claiming, setClaiming] = useState<string | null>(null);
  const [results, setResults] = useState<Record<string, ClaimResult>>({});

  const held = new Set((mine.data ?? []).map((c) => c.campaignId).filter(Boolean));

  const claim = async (campaign: CouponCampaign) => {
    setClaiming(campaign.campaignId);
    let result: ClaimResult;
    try {
      await couponClient.claimCoupon({ campaignId: campaign.campaignId });
      result = { kind: "claimed" };
    } catch (thrown) {
      const error = toUiError(thrown);
      result = error.code === Code.AlreadyExists ? { kind: "already" } : { kind: "error", error };
    }
    setResults((r) => ({ ...r, [campaign.campaignId]: result }));
    setClaiming(null);
    // The remaining count moved and the coupon may now be held: read both again.
    if (result.kind !== "error") {
      campaigns.reload();
      mine.reload();
    }
  };

  return (
    <div className="page">
      <h1>Coupons</h1>
      <section aria-labelledby="campaigns-heading">
        <h2 id="campaigns-heading">Campaigns</h2>
        {campaigns.loading && !campaigns.data ? (
          <Loading label="Loading the campaigns…" />
        ) : campaigns.error ? (
          <ErrorBanner error={campaigns.error} title="The campaigns could not be loaded" />
        ) : !campaigns.data || campaigns.data.length === 0 ? (
          <Empty>No campaign is running right now. Come back soon.</Empty>
        ) : (
          <ul className="coupon-grid" data-testid="campaigns">
            {campaigns.data.map((campaign) => (
              <CampaignCard
                key={campaign.campaignId}
                campaign={campaign}
                signedIn={session !== null}
                from={location.pathname}
                held={held.has(campaign.campaignId)}
                busy={claiming === campaign.campaignId}
                result={results[campaign.campaignId]}
                onClaim={() => claim(campaign)}
              />
            ))}
          </ul>
        )}
      </section>

      {session && (
        <section aria-labelledby="mine-heading">
          <h2 id="mine-heading">Your coupons</h2>
          {mine.loading && !mine.data ? (
            <Loading label="Loading your coupons…" />
          ) : mine.error ? (
            <ErrorBanner error={mine.error} title="Your coupons could not be loaded" />
          ) : !mine.data || mine.data.length === 0 ? (
            <Empty>You have no coupon yet: claim one above.</Empty>
          ) : (
            <table className="table" data-testid="my-coupons">
              <caption className="visually-hidden">Your coupons, soonest expiring first</caption>
              <thead>
                <tr>
                  <th scope="col">Coupon</th>
                  <th scope="col">Discount</th>
                  <th scope="col">Expires</th>
                  <th scope="col">Status</th>
                </tr>
              </thead>
              <tbody>
                {mine.data.map((c) => {
                  const status = UserCouponStatus[c.status] ?? "UNSPECIFIED";
                  return (
                    <tr key={c.userCouponId} data-testid="my-coupon" data-status={status}>
                      <td>{c.coupon?.name}</td>
                      <td>{couponRule(c.coupon)}</td>
                      <td>
                        <time dateTime={isoTime(c.expireTime)}>{formatDate(c.expireTime)}</time>
                      </td>
                      <td>
                        <span className={`badge badge-coupon-${status.toLowerCase()}`} data-testid="coupon-status">
                          {USER_COUPON_LABEL[c.status]}
                        </span>
                        {c.orderId && (
                          <>
                            {" "}
                            <Link to={`/orders/${c.orderId}`}>order {shortId(c.orderId)}</Link>
                          </>
                        )}
                      </td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          )}
        </section>
      )}
    </div>
  );
}

interface CardProps {
  campaign: CouponCampaign;
  signedIn: boolean;
  from: string;
  held: boolean;
  busy: boolean;
  result: ClaimResult | undefined;
  onClaim: () => void;
}

function CampaignCard({ campaign, signedIn, from, held, busy, result, onClaim }: CardProps) {
  const started = !campaign.startTime || timestampDate(campaign.startTime).getTime() <= Date.now();
  const soldOut = campaign.remainingQuantity <= 0n;
  const headingId = `campaign-${campaign.campaignId}`;
  // The Claim button goes away with the answer: keyboard and screen-reader users land on it.
  const answer = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (result) answer.current?.focus();
  }, [result]);
  return (
    <li className="coupon-card panel" data-testid="campaign" data-campaign-id={campaign.campaignId}
      aria-labelledby={headingId}>
      <h3 id={headingId}>{campaign.name}</h3>
      <p className="coupon-rule">{couponRule(campaign.coupon)}</p>
      {campaign.coupon?.description && <p className="muted">{campaign.coupon.description}</p>}
      <p className="muted">
        {started ? "Ends" : `Starts ${formatTime(campaign.startTime)}, ends`}{" "}
        <time dateTime={isoTime(campaign.endTime)}>{formatTime(campaign.endTime)}</time> ·{" "}
        <span data-testid="campaign-remaining">
          {campaign.remainingQuantity.toString()} of {campaign.totalQuantity.toString()} left
        </span>
        {campaign.coupon?.validityDays ? ` · usable ${campaign.coupon.validityDays} days after claiming` : ""}
      </p>
      <div aria-live="polite" ref={answer} tabIndex={-1} className="claim-answer">
        {result?.kind === "claimed" ? (
          <p className="claim-result claim-ok" data-testid="claim-result" data-result="claimed">
            Claimed: it is in your coupons below.
          </p>
        ) : result?.kind === "already" ? (
          <p className="claim-result claim-ok" data-testid="claim-result" data-result="already">
            You already have this coupon.
          </p>
        ) : result?.kind === "error" ? (
          <ErrorBanner error={result.error} title="Could not claim the coupon" />
        ) : null}
      </div>
      {!signedIn ? (
        <Link to="/login" state={{ from }}>
          Sign in to claim
        </Link>
      ) : held && !result ? (
        <p className="claim-result claim-ok" data-testid="claim-held">
          You have this coupon.
        </p>
      ) : result?.kind === "claimed" || result?.kind === "already" ? null : (
        <button type="button" onClick={onClaim} disabled={busy || soldOut || !started} data-testid="claim">
          {busy ? "Claiming…" : soldOut ? "Sold out" : !started ? "Not started yet" : "Claim"}
          <span className="visually-hidden"> {campaign.name}</span>
        </button>
      )}
    </li>
  );
}
