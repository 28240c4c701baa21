-- The W3C trace context current when the shipment was recorded (the order.paid delivery), as the
-- propagator writes it (`traceparent`, `tracestate`). Every worker step of the shipment (stock,
-- MarkOrderShipped, MarkOrderFinished, its notifications) continues that trace, so a paid order's
-- fulfilment is traced from the payment's settlement on. Empty for shipments recorded before this
-- column: their steps start traces of their own.
ALTER TABLE shipments ADD COLUMN trace_context JSONB NOT NULL DEFAULT '{}'::jsonb;
