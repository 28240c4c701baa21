-- Transactional outbox and consumer inbox, created in every service database
-- that publishes or consumes events. Tracked in `_mercato_messaging_migrations`,
-- separately from the service's own `_sqlx_migrations`.

-- One row per event written in the same transaction as the state change it
-- describes. The relay publishes rows in id order and stamps `published_at`.
CREATE TABLE outbox (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id        UUID        NOT NULL UNIQUE,
    event_type      TEXT        NOT NULL,
    aggregate_type  TEXT        NOT NULL,
    aggregate_id    TEXT        NOT NULL,
    -- The protobuf-encoded EventEnvelope, published byte for byte.
    envelope        BYTEA       NOT NULL,
    -- W3C trace context captured at enqueue time (traceparent, tracestate).
    headers         JSONB       NOT NULL DEFAULT '{}'::jsonb,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    published_at    TIMESTAMPTZ,
    -- Per-row failures (broker nack, unroutable) back off without blocking other rows.
    attempts        INTEGER     NOT NULL DEFAULT 0,
    last_error      TEXT,
    next_attempt_at TIMESTAMPTZ
);

-- The relay's claim query only ever looks at unpublished rows.
CREATE INDEX outbox_unpublished_idx ON outbox (id) WHERE published_at IS NULL;
-- Pruning deletes published rows older than the retention period.
CREATE INDEX outbox_published_at_idx ON outbox (published_at) WHERE published_at IS NOT NULL;

-- Message ids a consumer has applied, recorded in the same transaction as the
-- effect, so a redelivered message is acknowledged without applying it again.
CREATE TABLE inbox (
    consumer     TEXT        NOT NULL,
    message_id   TEXT        NOT NULL,
    processed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, message_id)
);

CREATE INDEX inbox_processed_at_idx ON inbox (processed_at);
