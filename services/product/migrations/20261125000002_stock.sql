-- Stock reservations, their lines, the stock history, AdjustStock idempotency keys, and the
-- low-stock alert flag. Every stock change (stock_levels row update) writes one stock_history
-- row in the same transaction; business times are bound from the service clock, never now().

-- One reservation per order (the unique order_id makes ReserveStock idempotent per order).
CREATE TABLE reservations (
    id           UUID PRIMARY KEY,
    order_id     UUID NOT NULL,
    -- PENDING, COMMITTED, RELEASED, EXPIRED, RETURNED (ReservationStatus without the prefix).
    status       TEXT NOT NULL
                 CHECK (status IN ('PENDING', 'COMMITTED', 'RELEASED', 'EXPIRED', 'RETURNED')),
    -- Hash of the merged, sorted lines: a replay must send the same lines.
    lines_hash   TEXT NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    -- When it left PENDING (or was RETURNED); NULL while PENDING.
    settled_at   TIMESTAMPTZ,
    CONSTRAINT reservations_order_id_key UNIQUE (order_id),
    CONSTRAINT reservations_settled_when_not_pending
        CHECK ((status = 'PENDING') = (settled_at IS NULL))
);

-- The sweeper's scan: pending reservations by expiry.
CREATE INDEX reservations_pending_expiry_idx ON reservations (expires_at) WHERE status = 'PENDING';

CREATE TABLE reservation_lines (
    reservation_id  UUID NOT NULL REFERENCES reservations (id) ON DELETE CASCADE,
    sku_id          UUID NOT NULL REFERENCES skus (id),
    quantity        BIGINT NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (reservation_id, sku_id)
);

-- "Which reservations hold this SKU" (product deletion checks, diagnostics).
CREATE INDEX reservation_lines_sku_idx ON reservation_lines (sku_id);

CREATE TABLE stock_history (
    id               UUID PRIMARY KEY,
    sku_id           UUID NOT NULL REFERENCES skus (id),
    -- ADJUSTMENT, RESERVATION, COMMIT, RELEASE, EXPIRY, RETURN (StockChangeKind without prefix).
    kind             TEXT NOT NULL
                     CHECK (kind IN ('ADJUSTMENT', 'RESERVATION', 'COMMIT', 'RELEASE', 'EXPIRY',
                                     'RETURN')),
    on_hand_before   BIGINT NOT NULL CHECK (on_hand_before >= 0),
    on_hand_after    BIGINT NOT NULL CHECK (on_hand_after >= 0),
    reserved_before  BIGINT NOT NULL CHECK (reserved_before >= 0),
    reserved_after   BIGINT NOT NULL CHECK (reserved_after >= 0),
    reason           TEXT NOT NULL DEFAULT '' CHECK (char_length(reason) <= 200),
    order_id         UUID,
    actor_id         UUID,
    created_at       TIMESTAMPTZ NOT NULL
);

-- ListStockHistory: newest first per SKU, keyset-paged on (created_at, id).
CREATE INDEX stock_history_sku_idx ON stock_history (sku_id, created_at DESC, id DESC);

-- AdjustStock idempotency: one row per (caller, key), kept 24 hours (older rows are ignored and
-- overwritten), remembering the request's hash and the result it produced.
CREATE TABLE stock_adjustment_keys (
    actor_id          UUID NOT NULL,
    idempotency_key   TEXT NOT NULL CHECK (char_length(idempotency_key) BETWEEN 1 AND 128),
    request_hash      TEXT NOT NULL,
    sku_id            UUID NOT NULL REFERENCES skus (id),
    history_entry_id  UUID NOT NULL REFERENCES stock_history (id),
    on_hand           BIGINT NOT NULL,
    reserved          BIGINT NOT NULL,
    version           BIGINT NOT NULL,
    stock_updated_at  TIMESTAMPTZ NOT NULL,
    created_at        TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (actor_id, idempotency_key)
);

-- stock.low is published once per crossing of the threshold: this flag remembers that the SKU is
-- currently at or below it (set when the alert is written, cleared when it goes back above).
ALTER TABLE stock_levels ADD COLUMN low_alerted BOOLEAN NOT NULL DEFAULT FALSE;
