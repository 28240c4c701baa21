-- The W3C trace context current when the payment was created (in the checkout's trace), as the
-- propagator writes it (`traceparent`, `tracestate`). A provider's webhook about the payment
-- arrives in a trace of its own and links to this one, so an operator can follow a checkout
-- from the order to its payment's settlement. Empty for payments created before this column.
ALTER TABLE payments ADD COLUMN trace_context JSONB NOT NULL DEFAULT '{}'::jsonb;
