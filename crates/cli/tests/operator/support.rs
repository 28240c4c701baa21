//! Shared set-up: an operator on a stack's services, and command lines pointing at them.

use std::time::Duration;

use clap::Parser as _;
use mercato_cli::{Cli, Endpoints, Operator, Progress, execute};
use mercato_e2e::stack::Stack;
use uuid::Uuid;

/// How long a test waits for an asynchronous effect.
pub(crate) const PATIENCE: Duration = Duration::from_secs(30);

/// The stack's five services, with a fresh operator id (an admin that is no account).
pub(crate) fn endpoints(stack: &Stack) -> Endpoints {
    let mut endpoints = Endpoints::new(
        stack.users.grpc_uri(),
        stack.products.grpc_uri(),
        stack.orders.grpc_uri(),
        stack.payments.grpc_uri(),
        stack.process.grpc_uri(),
    );
    endpoints.operator_id = Uuid::new_v4();
    endpoints
}

/// An operator acting on the stack.
pub(crate) fn operator(stack: &Stack) -> Operator {
    Operator::new(endpoints(stack))
}

/// `mercato <args>` with every service URL and the operator id of `endpoints` as flags.
pub(crate) fn command_line(endpoints: &Endpoints, args: &[&str]) -> Cli {
    let operator_id = endpoints.operator_id.to_string();
    let mut line = vec![
        "mercato",
        "--user-url",
        &endpoints.user_url,
        "--product-url",
        &endpoints.product_url,
        "--order-url",
        &endpoints.order_url,
        "--payment-url",
        &endpoints.payment_url,
        "--process-url",
        &endpoints.process_url,
        "--operator-id",
        &operator_id,
    ];
    line.extend_from_slice(args);
    Cli::try_parse_from(line).unwrap_or_else(|error| panic!("{args:?} parses: {error}"))
}

/// Runs `mercato <args>` against `endpoints` and parses its JSON output.
pub(crate) async fn run_json(endpoints: &Endpoints, args: &[&str]) -> serde_json::Value {
    let mut args = args.to_vec();
    args.push("--json");
    let out = execute(command_line(endpoints, &args), &mut Progress::quiet())
        .await
        .unwrap_or_else(|error| panic!("{args:?} succeeds: {error}"));
    serde_json::from_str(&out)
        .unwrap_or_else(|error| panic!("{args:?} prints JSON ({error}): {out}"))
}
