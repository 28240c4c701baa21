//! The service's notion of "now" (line add times, idempotency-key expiry): the platform's [`Clock`], which tests replace with a
//! [`ManualClock`].

pub use mercato_platform::clock::{Clock, ManualClock};
