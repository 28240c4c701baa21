//! The service's notion of "now" (reservation expiry, the best-seller window): the platform's [`Clock`], which tests replace with a
//! [`ManualClock`].

pub use mercato_platform::clock::{Clock, ManualClock};
