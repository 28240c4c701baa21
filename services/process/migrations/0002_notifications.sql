-- The notification outbox: one row per dedupe key, written by the consumer of
-- notification.requested in the transaction that records the event in the inbox, then delivered
-- by the sender (PENDING → SENT, or FAILED after the maximum attempts).
CREATE TABLE notifications (
    notification_id   uuid        PRIMARY KEY,
    dedupe_key        text        NOT NULL CONSTRAINT notifications_dedupe_key_key UNIQUE,
    user_id           uuid        NOT NULL,
    kind              text        NOT NULL,
    channel           text        NOT NULL CONSTRAINT notifications_channel_check CHECK (channel IN ('LOG', 'EMAIL')),
    recipient         text        NOT NULL,
    subject           text        NOT NULL,
    body              text        NOT NULL,
    parameters        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    order_id          uuid,
    status            text        NOT NULL
        CONSTRAINT notifications_status_check CHECK (status IN ('PENDING', 'SENT', 'FAILED')),
    attempt_count     integer     NOT NULL DEFAULT 0 CONSTRAINT notifications_attempts_check CHECK (attempt_count >= 0),
    last_error        text,
    next_attempt_time timestamptz,
    create_time       timestamptz NOT NULL,
    send_time         timestamptz,
    CONSTRAINT notifications_sent_has_time CHECK (status <> 'SENT' OR send_time IS NOT NULL),
    CONSTRAINT notifications_pending_is_scheduled CHECK ((status = 'PENDING') = (next_attempt_time IS NOT NULL))
);

CREATE INDEX notifications_due_idx ON notifications (next_attempt_time) WHERE status = 'PENDING';
CREATE INDEX notifications_listing_idx ON notifications (create_time DESC, notification_id DESC);
