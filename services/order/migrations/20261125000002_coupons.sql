-- Coupons: definitions created by admins, first-come-first-served campaigns that hand them out,
-- and the coupons users hold (with their history). Money is bigint minor units of the shop
-- currency (`CURRENCY`), recorded on every definition.
--
-- The FCFS invariant lives here: `coupon_campaigns_issued_range` keeps issued_quantity within
-- 0..total_quantity whatever the application does, and `user_coupons_campaign_user_key` keeps one
-- coupon per (campaign, user). ClaimCoupon relies on both inside one transaction
-- (services/order/src/coupon/claim.rs).

CREATE TABLE coupons (
    coupon_id             uuid PRIMARY KEY,
    name                  text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    description           text NOT NULL CHECK (char_length(description) <= 500),
    kind                  text NOT NULL CHECK (kind IN ('FIXED', 'PERCENT')),
    currency              text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    -- FIXED only: the amount off (> 0).
    fixed_discount        bigint,
    -- PERCENT only: 1-100, and an optional cap (> 0).
    percent_off           integer,
    max_discount          bigint,
    -- NULL: no minimum.
    minimum_order_amount  bigint CHECK (minimum_order_amount >= 0),
    validity_days         integer NOT NULL CHECK (validity_days BETWEEN 1 AND 3650),
    create_time           timestamptz NOT NULL,
    CONSTRAINT coupons_kind_fields CHECK (
        (kind = 'FIXED' AND fixed_discount > 0 AND percent_off IS NULL AND max_discount IS NULL)
        OR (kind = 'PERCENT' AND fixed_discount IS NULL AND percent_off BETWEEN 1 AND 100
            AND (max_discount IS NULL OR max_discount > 0)))
);

-- ListCoupons, newest first.
CREATE INDEX coupons_by_time ON coupons (create_time DESC, coupon_id DESC);

CREATE TABLE coupon_campaigns (
    campaign_id      uuid PRIMARY KEY,
    coupon_id        uuid NOT NULL REFERENCES coupons (coupon_id),
    name             text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    -- Claims are accepted in [start_time, end_time).
    start_time       timestamptz NOT NULL,
    end_time         timestamptz NOT NULL,
    total_quantity   bigint NOT NULL CHECK (total_quantity BETWEEN 1 AND 10000000),
    -- Only ever incremented, by the conditional UPDATE of a claim.
    issued_quantity  bigint NOT NULL DEFAULT 0,
    create_time      timestamptz NOT NULL,
    CONSTRAINT coupon_campaigns_window CHECK (end_time > start_time),
    CONSTRAINT coupon_campaigns_issued_range
        CHECK (issued_quantity >= 0 AND issued_quantity <= total_quantity)
);

-- ListCampaigns, soonest ending first.
CREATE INDEX coupon_campaigns_by_end ON coupon_campaigns (end_time, campaign_id);

-- One coupon held by one user, with a snapshot of its definition as it was when issued (the
-- columns from `name` to `coupon_create_time` mirror `coupons`).
CREATE TABLE user_coupons (
    user_coupon_id        uuid PRIMARY KEY,
    user_id               uuid NOT NULL,
    coupon_id             uuid NOT NULL REFERENCES coupons (coupon_id),
    -- NULL when an admin issued it directly (IssueCoupon).
    campaign_id           uuid REFERENCES coupon_campaigns (campaign_id),
    -- As stored; an AVAILABLE coupon past expire_time is reported EXPIRED before the sweeper
    -- writes it.
    status                text NOT NULL CHECK (status IN ('AVAILABLE', 'USED', 'EXPIRED')),
    issue_time            timestamptz NOT NULL,
    -- issue_time + validity_days × 24 h; usable while now < expire_time.
    expire_time           timestamptz NOT NULL,
    -- The order that used it; set exactly while USED.
    order_id              uuid,
    name                  text NOT NULL,
    description           text NOT NULL,
    kind                  text NOT NULL CHECK (kind IN ('FIXED', 'PERCENT')),
    currency              text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    fixed_discount        bigint,
    percent_off           integer,
    max_discount          bigint,
    minimum_order_amount  bigint CHECK (minimum_order_amount >= 0),
    validity_days         integer NOT NULL CHECK (validity_days BETWEEN 1 AND 3650),
    coupon_create_time    timestamptz NOT NULL,
    CONSTRAINT user_coupons_expiry CHECK (expire_time > issue_time),
    CONSTRAINT user_coupons_order_iff_used CHECK ((status = 'USED') = (order_id IS NOT NULL)),
    CONSTRAINT user_coupons_kind_fields CHECK (
        (kind = 'FIXED' AND fixed_discount > 0 AND percent_off IS NULL AND max_discount IS NULL)
        OR (kind = 'PERCENT' AND fixed_discount IS NULL AND percent_off BETWEEN 1 AND 100
            AND (max_discount IS NULL OR max_discount > 0))),
    -- One coupon per user and campaign. NULLs are distinct, so directly issued coupons
    -- (campaign_id NULL) never collide: this is UNIQUE (campaign_id, user_id) WHERE campaign_id
    -- IS NOT NULL, as a constraint that ON CONFLICT can name.
    CONSTRAINT user_coupons_campaign_user_key UNIQUE (campaign_id, user_id)
);

-- ListMyCoupons, soonest expiring first.
CREATE INDEX user_coupons_by_user_expiry ON user_coupons (user_id, expire_time, user_coupon_id);
-- The expiry sweeper scans only unused coupons.
CREATE INDEX user_coupons_available_by_expiry ON user_coupons (expire_time)
    WHERE status = 'AVAILABLE';

-- Every change of a user coupon, oldest first (seq; changes of one coupon are serialised by its
-- row lock, so seq orders them).
CREATE TABLE user_coupon_history (
    user_coupon_id  uuid NOT NULL REFERENCES user_coupons (user_coupon_id) ON DELETE CASCADE,
    seq             bigint GENERATED ALWAYS AS IDENTITY,
    kind            text NOT NULL CHECK (kind IN ('ISSUED', 'USED', 'RESTORED', 'EXPIRED')),
    -- The order of USED and RESTORED entries.
    order_id        uuid,
    event_time      timestamptz NOT NULL,
    PRIMARY KEY (user_coupon_id, seq),
    CHECK ((kind IN ('USED', 'RESTORED')) = (order_id IS NOT NULL))
);

-- Idempotency keys of CreateCoupon, CreateCampaign and IssueCoupon: scoped to the caller and the
-- RPC, bound to a hash of the request, naming what the first request created; kept 24 hours.
-- Claimed in the creating transaction, so concurrent duplicates wait on the primary key and
-- then replay the winner's resource.
CREATE TABLE coupon_idempotency_keys (
    caller_id     uuid NOT NULL,
    rpc           text NOT NULL CHECK (rpc IN ('CreateCoupon', 'CreateCampaign', 'IssueCoupon')),
    key           text NOT NULL,
    request_hash  bytea NOT NULL,
    resource_id   uuid NOT NULL,
    create_time   timestamptz NOT NULL,
    PRIMARY KEY (caller_id, rpc, key)
);

CREATE INDEX coupon_idempotency_keys_by_time ON coupon_idempotency_keys (create_time);
