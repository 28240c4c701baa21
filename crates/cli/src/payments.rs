//! `payments reconcile`: the payment service's `ReconcilePayments`, which re-fetches from the
//! provider every payment (and refund) unsettled for longer than a threshold and settles it now,
//! instead of waiting for the periodic sweep.

use std::time::Duration;

use mercato_proto::mercato::payment::v1 as payment;
use serde_json::{Value, json};

use crate::connect::Operator;
use crate::error::{Answer as _, CliError};
use crate::render::Table;

/// `payments reconcile` flags.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ReconcileArgs {
    /// Only payments unsettled for at least this long, e.g. `10m` (default: the service's
    /// configured threshold).
    #[arg(long, value_parser = mercato_platform::settings::parse_duration)]
    pub older_than: Option<Duration>,
    /// Payments to examine at most (0: the service's default of 100).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub limit: i32,
}

/// Runs one reconciliation; the counts of what it examined and settled.
pub async fn reconcile(
    operator: &Operator,
    args: &ReconcileArgs,
) -> Result<payment::ReconcilePaymentsResponse, CliError> {
    let older_than = args
        .older_than
        .map(|duration| {
            prost_types::Duration::try_from(duration)
                .map_err(|_| CliError::Usage(format!("--older-than {duration:?} is out of range")))
        })
        .transpose()?;
    operator
        .payments()?
        .reconcile_payments(operator.request(payment::ReconcilePaymentsRequest {
            older_than,
            limit: args.limit,
        }))
        .await
        .answer("PaymentService.ReconcilePayments")
}

/// The counts as JSON.
pub fn report_json(report: &payment::ReconcilePaymentsResponse) -> Value {
    json!({
        "examined": report.examined_count,
        "succeeded": report.succeeded_count,
        "failed": report.failed_count,
        "pending": report.pending_count,
    })
}

/// The counts as a table.
pub fn report_table(report: &payment::ReconcilePaymentsResponse) -> String {
    let mut table = Table::with_header(["examined", "succeeded", "failed", "still pending"]);
    table.row([
        report.examined_count.to_string(),
        report.succeeded_count.to_string(),
        report.failed_count.to_string(),
        report.pending_count.to_string(),
    ]);
    table.render()
}
