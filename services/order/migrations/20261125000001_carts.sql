-- The persistent cart: one per user, lines keyed by SKU. Only ids and quantities are stored;
-- prices, names and statuses come live from the product service on every read.

-- One row per user who ever changed their cart. Every mutation upserts it first, which locks it
-- for the transaction and so serialises one user's mutations (the line limit cannot be raced).
CREATE TABLE carts (
    user_id     uuid PRIMARY KEY,
    update_time timestamptz NOT NULL
);

CREATE TABLE cart_lines (
    user_id  uuid   NOT NULL REFERENCES carts (user_id) ON DELETE CASCADE,
    sku_id   uuid   NOT NULL,
    quantity bigint NOT NULL CONSTRAINT cart_lines_quantity_range CHECK (quantity BETWEEN 1 AND 999),
    add_time timestamptz NOT NULL,
    -- Insertion order, so lines list in the order they were first added.
    seq      bigint GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (user_id, sku_id)
);

CREATE INDEX cart_lines_by_user_seq ON cart_lines (user_id, seq);

-- Idempotency keys of the cart's non-idempotent mutations (AddCartItem, partial RemoveCartItem),
-- scoped to the user and the RPC, kept for 24 hours. `fingerprint` is a hash of the request, so
-- a key reused with a different request is detected.
CREATE TABLE cart_idempotency_keys (
    user_id     uuid        NOT NULL,
    rpc         text        NOT NULL,
    key         text        NOT NULL,
    fingerprint bytea       NOT NULL,
    create_time timestamptz NOT NULL,
    PRIMARY KEY (user_id, rpc, key)
);

CREATE INDEX cart_idempotency_keys_by_time ON cart_idempotency_keys (create_time);
