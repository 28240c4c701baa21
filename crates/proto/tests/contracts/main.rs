//! Contract tests over the compiled descriptor set: the API design rules every
//! Mercato proto must follow (BOLA-free BFF requests, Money for money, cursor
//! paging, idempotency keys, documented events and fields).
//!
//! Each rule is a function returning its violations, so a failure names every
//! offending field at once; the `*_rule_catches_*` tests break a copy of the
//! real descriptor set on purpose to prove each rule can fail.
//!
//! `rules` holds the rules and `descriptors` the helpers that load and walk the set;
//! `rules_hold` checks the real contracts against every rule, `rules_fail` proves each rule
//! can fail, and `round_trip` encodes and decodes real messages.

mod descriptors;
mod round_trip;
mod rules;
mod rules_fail;
mod rules_hold;
