//! The order state machine, as a pure function: which status a request or an event moves an
//! order to, whether it is a replay of a change already made (a successful no-op), or illegal.
//!
//! ```text
//! PENDING ──▶ AWAITING_PAYMENT ──▶ PAID ──▶ SHIPPED ──▶ FINISHED
//!    │  └──────────────────────────▲ │
//!    ├──▶ CANCELLED ◀── (unpaid) ────┤ (PAID: refunded)
//!    └──▶ EXPIRED   ◀── (unpaid)
//! ```
//! FINISHED, CANCELLED and EXPIRED are terminal: nothing moves an order out of them.

use mercato_proto::mercato::common::v1::OrderStatus;

/// The state of an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Created, stock reserved, no payment attached yet.
    Pending,
    /// The payment exists and waits for the buyer or the provider.
    AwaitingPayment,
    /// Paid in full.
    Paid,
    /// Handed to the carrier.
    Shipped,
    /// Delivered (terminal).
    Finished,
    /// Cancelled (terminal).
    Cancelled,
    /// Unpaid past its deadline (terminal).
    Expired,
}

/// Every status, for tests and exhaustive checks.
pub const ALL: [Status; 7] = [
    Status::Pending,
    Status::AwaitingPayment,
    Status::Paid,
    Status::Shipped,
    Status::Finished,
    Status::Cancelled,
    Status::Expired,
];

impl Status {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::AwaitingPayment => "AWAITING_PAYMENT",
            Self::Paid => "PAID",
            Self::Shipped => "SHIPPED",
            Self::Finished => "FINISHED",
            Self::Cancelled => "CANCELLED",
            Self::Expired => "EXPIRED",
        }
    }

    /// Parses a stored name.
    pub fn parse(raw: &str) -> Option<Self> {
        ALL.into_iter().find(|s| s.as_str() == raw)
    }

    /// The wire enum.
    pub fn to_proto(self) -> OrderStatus {
        match self {
            Self::Pending => OrderStatus::Pending,
            Self::AwaitingPayment => OrderStatus::AwaitingPayment,
            Self::Paid => OrderStatus::Paid,
            Self::Shipped => OrderStatus::Shipped,
            Self::Finished => OrderStatus::Finished,
            Self::Cancelled => OrderStatus::Cancelled,
            Self::Expired => OrderStatus::Expired,
        }
    }

    /// The domain status of a wire enum; `None` for UNSPECIFIED.
    pub fn from_proto(status: OrderStatus) -> Option<Self> {
        match status {
            OrderStatus::Unspecified => None,
            OrderStatus::Pending => Some(Self::Pending),
            OrderStatus::AwaitingPayment => Some(Self::AwaitingPayment),
            OrderStatus::Paid => Some(Self::Paid),
            OrderStatus::Shipped => Some(Self::Shipped),
            OrderStatus::Finished => Some(Self::Finished),
            OrderStatus::Cancelled => Some(Self::Cancelled),
            OrderStatus::Expired => Some(Self::Expired),
        }
    }

    /// Nothing moves the order out of this state.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Finished | Self::Cancelled | Self::Expired)
    }

    /// Not paid yet (the states an order can expire or be cancelled from without a refund).
    pub fn is_unpaid(self) -> bool {
        matches!(self, Self::Pending | Self::AwaitingPayment)
    }

    /// Whether `self ▶ to` is an edge of the machine.
    pub fn can_move_to(self, to: Self) -> bool {
        use Status::{AwaitingPayment, Cancelled, Expired, Finished, Paid, Pending, Shipped};
        matches!(
            (self, to),
            (Pending, AwaitingPayment | Paid | Cancelled | Expired)
                | (AwaitingPayment, Paid | Cancelled | Expired)
                | (Paid, Shipped | Cancelled)
                | (Shipped, Finished)
        )
    }
}

/// What asks an order to change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// The payment service attached the payment (`AttachPayment`).
    AttachPayment,
    /// The payment succeeded (`order.paid`).
    MarkPaid,
    /// The payment failed (`payment.failed`): an unpaid order is cancelled.
    PaymentFailed,
    /// The buyer, an admin or a service cancels (`CancelOrder`).
    Cancel,
    /// The payment deadline passed (the expiry sweeper).
    Expire,
    /// The process service shipped the parcel (`MarkOrderShipped`).
    Ship,
    /// The parcel was delivered (`MarkOrderFinished`).
    Finish,
}

/// All commands, for tests.
pub const COMMANDS: [Command; 7] = [
    Command::AttachPayment,
    Command::MarkPaid,
    Command::PaymentFailed,
    Command::Cancel,
    Command::Expire,
    Command::Ship,
    Command::Finish,
];

/// The machine's answer to a command in a state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Move to this status (one version step, one event).
    Move(Status),
    /// The order already made this change (or a later one that implies it): succeed, change
    /// nothing, publish nothing.
    AlreadyDone,
    /// Refused: FAILED_PRECONDITION / ILLEGAL_STATE_TRANSITION.
    Illegal,
}

/// Decides what `command` does to an order in `status`.
pub fn decide(status: Status, command: Command) -> Decision {
    use Command as C;
    use Decision::{AlreadyDone, Illegal, Move};
    use Status as S;
    match (command, status) {
        (C::AttachPayment, S::Pending) => Move(S::AwaitingPayment),
        // Events may overtake the attach call: a paid (or later) order keeps its state.
        (C::AttachPayment, S::AwaitingPayment | S::Paid | S::Shipped | S::Finished) => AlreadyDone,
        (C::AttachPayment, S::Cancelled | S::Expired) => Illegal,

        (C::MarkPaid, S::Pending | S::AwaitingPayment) => Move(S::Paid),
        (C::MarkPaid, S::Paid | S::Shipped | S::Finished) => AlreadyDone,
        (C::MarkPaid, S::Cancelled | S::Expired) => Illegal,

        (C::PaymentFailed, S::Pending | S::AwaitingPayment) => Move(S::Cancelled),
        // A failure reported after the order moved on (paid by a retry, or already ended) is
        // stale: it changes nothing.
        (C::PaymentFailed, _) => AlreadyDone,

        (C::Cancel, S::Pending | S::AwaitingPayment | S::Paid) => Move(S::Cancelled),
        (C::Cancel, S::Cancelled) => AlreadyDone,
        (C::Cancel, S::Shipped | S::Finished | S::Expired) => Illegal,

        (C::Expire, S::Pending | S::AwaitingPayment) => Move(S::Expired),
        (C::Expire, S::Expired) => AlreadyDone,
        (C::Expire, _) => Illegal,

        (C::Ship, S::Paid) => Move(S::Shipped),
        (C::Ship, S::Shipped | S::Finished) => AlreadyDone,
        (C::Ship, _) => Illegal,

        (C::Finish, S::Shipped) => Move(S::Finished),
        (C::Finish, S::Finished) => AlreadyDone,
        (C::Finish, _) => Illegal,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn stored_names_and_wire_values_round_trip() {
        for status in ALL {
            assert_eq!(Status::parse(status.as_str()), Some(status));
            assert_eq!(Status::from_proto(status.to_proto()), Some(status));
        }
        assert_eq!(Status::parse("pending"), None);
        assert_eq!(Status::from_proto(OrderStatus::Unspecified), None);
    }

    #[test]
    fn every_move_is_an_edge_and_terminal_states_refuse_every_move() {
        for status in ALL {
            for command in COMMANDS {
                if let Decision::Move(to) = decide(status, command) {
                    assert!(status.can_move_to(to), "{status:?} -{command:?}-> {to:?}");
                    assert!(!status.is_terminal(), "{status:?} is terminal");
                }
            }
        }
    }

    #[test]
    fn the_documented_answers_hold() {
        use Command as C;
        use Decision::{AlreadyDone, Illegal, Move};
        use Status as S;
        let table = [
            (S::Pending, C::AttachPayment, Move(S::AwaitingPayment)),
            (S::Pending, C::MarkPaid, Move(S::Paid)),
            (S::AwaitingPayment, C::MarkPaid, Move(S::Paid)),
            (S::Paid, C::MarkPaid, AlreadyDone),
            (S::Paid, C::AttachPayment, AlreadyDone),
            (S::Paid, C::Cancel, Move(S::Cancelled)),
            (S::Shipped, C::Cancel, Illegal),
            (S::Expired, C::Cancel, Illegal),
            (S::Cancelled, C::Cancel, AlreadyDone),
            (S::Cancelled, C::MarkPaid, Illegal),
            (S::AwaitingPayment, C::PaymentFailed, Move(S::Cancelled)),
            (S::Paid, C::PaymentFailed, AlreadyDone),
            (S::Paid, C::Ship, Move(S::Shipped)),
            (S::AwaitingPayment, C::Ship, Illegal),
            (S::Shipped, C::Ship, AlreadyDone),
            (S::Shipped, C::Finish, Move(S::Finished)),
            (S::Paid, C::Finish, Illegal),
            (S::Paid, C::Expire, Illegal),
            (S::Expired, C::Expire, AlreadyDone),
        ];
        for (status, command, expected) in table {
            assert_eq!(decide(status, command), expected, "{status:?} {command:?}");
        }
    }

    fn command() -> impl Strategy<Value = Command> {
        prop::sample::select(COMMANDS.to_vec())
    }

    proptest! {
        /// Any sequence of commands, with duplicates and in any order (what redelivered and
        /// reordered events and retried calls produce), walks only edges of the machine, and
        /// once a terminal state is reached nothing moves the order again.
        #[test]
        fn random_sequences_walk_only_legal_edges(
            commands in prop::collection::vec(command(), 0..40),
            duplicate_every in 1usize..5,
        ) {
            let mut status = Status::Pending;
            let mut terminal_at: Option<Status> = None;
            let mut versions = 1u32;
            for (i, command) in commands.iter().enumerate() {
                let repeats = if i % duplicate_every == 0 { 2 } else { 1 };
                for _ in 0..repeats {
                    match decide(status, *command) {
                        Decision::Move(to) => {
                            prop_assert!(status.can_move_to(to));
                            prop_assert!(terminal_at.is_none(), "moved out of {terminal_at:?}");
                            status = to;
                            versions += 1;
                        }
                        Decision::AlreadyDone | Decision::Illegal => {}
                    }
                    if status.is_terminal() {
                        terminal_at.get_or_insert(status);
                    }
                }
                // A replay of the command just applied never moves the order again.
                prop_assert_ne!(decide(status, *command), Decision::Move(status));
            }
            // At most one step per edge of the longest path (PENDING..FINISHED is 4 steps).
            prop_assert!(versions <= 5, "{versions} versions");
        }
    }
}
