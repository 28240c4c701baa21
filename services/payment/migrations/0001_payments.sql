-- The payment service's database: payments (one per order), refunds, received webhook events,
-- the points wallet with its append-only ledger, and the sandbox provider's own records.

CREATE TABLE payments (
    payment_id          UUID        PRIMARY KEY,
    -- At most one payment per order: concurrent or repeated order.created deliveries meet here.
    order_id            UUID        NOT NULL CONSTRAINT payments_order_unique UNIQUE,
    user_id             UUID        NOT NULL,
    method              TEXT        NOT NULL CHECK (method IN ('STRIPE', 'POINTS', 'SANDBOX')),
    -- Which provider holds the intent (`sandbox`, `stripe`); NULL for POINTS.
    provider            TEXT,
    status              TEXT        NOT NULL CHECK (status IN ('PENDING', 'REQUIRES_ACTION',
                            'PROCESSING', 'SUCCEEDED', 'FAILED', 'CANCELLED',
                            'PARTIALLY_REFUNDED', 'REFUNDED')),
    amount              BIGINT      NOT NULL CHECK (amount > 0),
    currency            TEXT        NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    refunded_amount     BIGINT      NOT NULL DEFAULT 0
                            CHECK (refunded_amount >= 0 AND refunded_amount <= amount),
    provider_payment_id TEXT        CONSTRAINT payments_provider_id_unique UNIQUE,
    payment_url         TEXT,
    client_secret       TEXT,
    failure_code        TEXT,
    failure_message     TEXT,
    -- The order.created payload (protobuf), from which order.paid takes lines and address.
    order_snapshot      BYTEA       NOT NULL,
    -- Whether OrderService.AttachPayment has answered for this payment.
    attached            BOOLEAN     NOT NULL DEFAULT FALSE,
    version             BIGINT      NOT NULL DEFAULT 1 CHECK (version > 0),
    create_time         TIMESTAMPTZ NOT NULL,
    update_time         TIMESTAMPTZ NOT NULL,
    settle_time         TIMESTAMPTZ
);

CREATE INDEX payments_user_idx ON payments (user_id, create_time DESC, payment_id DESC);
CREATE INDEX payments_listing_idx ON payments (create_time DESC, payment_id DESC);
-- The reconciliation sweep only looks at unsettled payments.
CREATE INDEX payments_open_idx ON payments (update_time)
    WHERE status IN ('PENDING', 'REQUIRES_ACTION', 'PROCESSING');

CREATE TABLE refunds (
    refund_id           UUID        PRIMARY KEY,
    payment_id          UUID        NOT NULL REFERENCES payments (payment_id),
    amount              BIGINT      NOT NULL CHECK (amount > 0),
    status              TEXT        NOT NULL CHECK (status IN ('PENDING', 'SUCCEEDED', 'FAILED')),
    reason              TEXT        NOT NULL CHECK (char_length(reason) BETWEEN 1 AND 200),
    provider_refund_id  TEXT,
    failure_message     TEXT,
    -- What makes the refund happen once: `order-cancelled:<order>` for the automatic refund of
    -- a cancelled order, `rpc:<caller>:<key>` for RefundPayment.
    idempotency_scope   TEXT        NOT NULL CONSTRAINT refunds_scope_unique UNIQUE,
    -- SHA-256 of the request a client key was first used with.
    request_hash        TEXT        NOT NULL,
    create_time         TIMESTAMPTZ NOT NULL,
    settle_time         TIMESTAMPTZ
);

CREATE INDEX refunds_payment_idx ON refunds (payment_id, create_time);

-- Provider webhook events already applied, recorded in the transaction of their effect.
CREATE TABLE webhook_events (
    event_id      TEXT        PRIMARY KEY,
    event_type    TEXT        NOT NULL,
    object_id     TEXT,
    received_time TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Points wallets. The balance is maintained only by ledger inserts (trigger below), is never
-- negative (CHECK) and equals the sum of the wallet's ledger at every commit (deferred
-- constraint trigger).
CREATE TABLE wallets (
    user_id     UUID        PRIMARY KEY,
    balance     BIGINT      NOT NULL DEFAULT 0
                    CONSTRAINT wallets_balance_non_negative CHECK (balance >= 0),
    version     BIGINT      NOT NULL DEFAULT 0,
    update_time TIMESTAMPTZ
);

CREATE TABLE ledger_entries (
    entry_id        UUID        PRIMARY KEY,
    user_id         UUID        NOT NULL REFERENCES wallets (user_id),
    kind            TEXT        NOT NULL CHECK (kind IN ('CHARGE', 'SPEND', 'REFUND')),
    amount          BIGINT      NOT NULL CHECK (amount <> 0),
    -- Set by the trigger: the wallet balance right after this entry, and the wallet version it
    -- made (the entry's position in the wallet's history: entries are applied in this order).
    balance_after   BIGINT      NOT NULL DEFAULT 0 CHECK (balance_after >= 0),
    wallet_version  BIGINT      NOT NULL DEFAULT 0,
    order_id        UUID,
    payment_id      UUID,
    refund_id       UUID,
    -- CHARGE only: the client's key and a hash of the request it was first used with.
    idempotency_key TEXT,
    request_hash    TEXT,
    create_time     TIMESTAMPTZ NOT NULL,
    CHECK ((kind = 'SPEND') = (amount < 0)),
    CHECK ((kind = 'CHARGE') = (idempotency_key IS NOT NULL)),
    CHECK (kind = 'CHARGE' OR payment_id IS NOT NULL),
    CHECK (kind <> 'REFUND' OR refund_id IS NOT NULL)
);

CREATE UNIQUE INDEX ledger_charge_key_unique ON ledger_entries (user_id, idempotency_key)
    WHERE kind = 'CHARGE';
-- A payment spends once; a refund credits once.
CREATE UNIQUE INDEX ledger_spend_once ON ledger_entries (payment_id) WHERE kind = 'SPEND';
CREATE UNIQUE INDEX ledger_refund_once ON ledger_entries (refund_id) WHERE kind = 'REFUND';
CREATE UNIQUE INDEX ledger_position_unique ON ledger_entries (user_id, wallet_version);

-- Each entry moves its wallet's balance, under the wallet's row lock; the CHECK on wallets
-- refuses an entry that would make the balance negative.
CREATE FUNCTION ledger_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE wallets
       SET balance = balance + NEW.amount, version = version + 1, update_time = NEW.create_time
     WHERE user_id = NEW.user_id
    RETURNING balance, version INTO NEW.balance_after, NEW.wallet_version;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no wallet for user %', NEW.user_id USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER ledger_apply BEFORE INSERT ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_apply();

-- The ledger is append-only.
CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger entries are append-only' USING ERRCODE = 'restrict_violation';
END $$;

CREATE TRIGGER ledger_append_only BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();

-- A balance changes only from within ledger_apply (trigger depth 2), never by a direct UPDATE.
CREATE FUNCTION wallets_guard_balance() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.balance IS DISTINCT FROM OLD.balance AND pg_trigger_depth() < 2 THEN
        RAISE EXCEPTION 'wallet balances change only through ledger entries'
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER wallets_guard_balance BEFORE UPDATE ON wallets
    FOR EACH ROW EXECUTE FUNCTION wallets_guard_balance();

-- At commit, every wallet touched must equal the sum of its ledger.
CREATE FUNCTION wallets_balance_matches_ledger() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    total BIGINT;
    current BIGINT;
BEGIN
    SELECT balance INTO current FROM wallets WHERE user_id = NEW.user_id;
    SELECT COALESCE(SUM(amount), 0) INTO total FROM ledger_entries WHERE user_id = NEW.user_id;
    IF current IS DISTINCT FROM total THEN
        RAISE EXCEPTION 'wallet % balance % differs from its ledger sum %', NEW.user_id, current, total
            USING ERRCODE = 'check_violation', CONSTRAINT = 'wallets_balance_matches_ledger';
    END IF;
    RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER wallets_balance_matches_ledger
    AFTER INSERT OR UPDATE ON wallets DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION wallets_balance_matches_ledger();

-- The sandbox provider's side: what a real provider would keep on its servers.
CREATE TABLE sandbox_intents (
    intent_id       TEXT        PRIMARY KEY,
    idempotency_key TEXT        NOT NULL UNIQUE,
    order_id        UUID        NOT NULL,
    payment_id      UUID        NOT NULL,
    amount          BIGINT      NOT NULL CHECK (amount > 0),
    currency        TEXT        NOT NULL,
    status          TEXT        NOT NULL CHECK (status IN ('requires_action', 'processing',
                        'succeeded', 'failed', 'canceled')),
    failure_code    TEXT,
    failure_message TEXT,
    create_time     TIMESTAMPTZ NOT NULL DEFAULT now(),
    update_time     TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE sandbox_refunds (
    refund_id       TEXT        PRIMARY KEY,
    idempotency_key TEXT        NOT NULL UNIQUE,
    intent_id       TEXT        NOT NULL REFERENCES sandbox_intents (intent_id),
    amount          BIGINT      NOT NULL CHECK (amount > 0),
    create_time     TIMESTAMPTZ NOT NULL DEFAULT now()
);
