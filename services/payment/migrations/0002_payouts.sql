-- Seller payouts: each seller's connected account at the provider (Stripe Connect), and one
-- payout per paid order and seller, transferred by the payout worker and reversed on refund.

CREATE TABLE seller_accounts (
    seller_id           UUID        PRIMARY KEY,
    -- The connected account (`acct_…`); one seller, one account.
    provider_account_id TEXT        NOT NULL CONSTRAINT seller_accounts_provider_id_unique UNIQUE,
    status              TEXT        NOT NULL CHECK (status IN ('ONBOARDING', 'ACTIVE', 'RESTRICTED')),
    country_code        TEXT        NOT NULL CHECK (country_code ~ '^[A-Z]{2}$'),
    -- What the provider last said (status is derived from them).
    charges_enabled     BOOLEAN     NOT NULL DEFAULT FALSE,
    payouts_enabled     BOOLEAN     NOT NULL DEFAULT FALSE,
    details_submitted   BOOLEAN     NOT NULL DEFAULT FALSE,
    -- The CreateSellerAccount key that created it, and a hash of that request (a replay within
    -- 24 hours returns this account; the key with another request is IDEMPOTENCY_KEY_REUSED).
    idempotency_key     TEXT        NOT NULL,
    request_hash        TEXT        NOT NULL,
    create_time         TIMESTAMPTZ NOT NULL,
    -- When the status last changed.
    update_time         TIMESTAMPTZ NOT NULL,
    -- When the provider was last asked.
    refresh_time        TIMESTAMPTZ NOT NULL
);

CREATE TABLE payouts (
    payout_id            UUID        PRIMARY KEY,
    order_id             UUID        NOT NULL,
    payment_id           UUID        NOT NULL REFERENCES payments (payment_id),
    seller_id            UUID        NOT NULL REFERENCES seller_accounts (seller_id),
    -- The destination, as it was when the order was paid.
    provider_account_id  TEXT        NOT NULL,
    currency             TEXT        NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    -- Σ line_total of the seller's lines; the fee at fee_bps, rounded up; the rest.
    gross_amount         BIGINT      NOT NULL CHECK (gross_amount > 0),
    platform_fee         BIGINT      NOT NULL CHECK (platform_fee >= 0),
    net_amount           BIGINT      NOT NULL CHECK (net_amount > 0),
    fee_bps              INTEGER     NOT NULL CHECK (fee_bps BETWEEN 0 AND 10000),
    status               TEXT        NOT NULL CHECK (status IN ('PENDING', 'TRANSFERRED',
                             'REVERSED', 'FAILED')),
    provider_transfer_id TEXT        CONSTRAINT payouts_transfer_unique UNIQUE,
    -- Set (and committed) before the first transfer request is sent: from then on a transfer may
    -- exist at the provider even without an id here, so the worker looks for it before creating.
    transfer_requested   BOOLEAN     NOT NULL DEFAULT FALSE,
    -- How much of net_amount refunds say must go back, and how much has.
    reversal_target      BIGINT      NOT NULL DEFAULT 0,
    reversed_amount      BIGINT      NOT NULL DEFAULT 0,
    -- Work tries (transfer, reversal, account check) since the last success, for the backoff.
    attempts             INTEGER     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    -- When the worker should look at it next; NULL when there is nothing to do.
    next_attempt_time    TIMESTAMPTZ,
    last_error           TEXT,
    create_time          TIMESTAMPTZ NOT NULL,
    update_time          TIMESTAMPTZ NOT NULL,
    transfer_time        TIMESTAMPTZ,
    reverse_time         TIMESTAMPTZ,
    -- One payout per seller and order, however often order.paid is written or replayed.
    CONSTRAINT payouts_order_seller_unique UNIQUE (order_id, seller_id),
    CHECK (net_amount = gross_amount - platform_fee),
    CHECK (reversal_target BETWEEN 0 AND net_amount),
    CHECK (reversed_amount BETWEEN 0 AND reversal_target),
    CHECK (status <> 'TRANSFERRED' OR provider_transfer_id IS NOT NULL),
    CHECK (provider_transfer_id IS NULL OR transfer_requested),
    CHECK (reversed_amount = 0 OR provider_transfer_id IS NOT NULL)
);

CREATE INDEX payouts_due_idx ON payouts (next_attempt_time) WHERE next_attempt_time IS NOT NULL;
CREATE INDEX payouts_seller_idx ON payouts (seller_id, create_time DESC, payout_id DESC);
CREATE INDEX payouts_listing_idx ON payouts (create_time DESC, payout_id DESC);
