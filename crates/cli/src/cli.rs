//! The command line: [`Cli`] (clap) and [`execute`], which runs one parsed command and renders
//! its result as a table or, with `--json`, as JSON.

use clap::{Parser, Subcommand};

use crate::connect::{Endpoints, Operator};
use crate::coupons::{self, CampaignArgs, CouponArgs};
use crate::dlq::{self, DlqTarget, Selection};
use crate::error::CliError;
use crate::keys::{self, RotateArgs};
use crate::orders;
use crate::payments::{self, ReconcileArgs};
use crate::progress::Progress;
use crate::render::json_document;
use crate::seed::{self, SeedArgs};

/// `mercato`: operate a running Mercato from inside its network.
#[derive(Debug, Parser)]
#[command(
    name = "mercato",
    version,
    about = "Operator CLI for Mercato: demo data, coupons, orders, dead letters, payments, signing keys",
    long_about = "Operator CLI for Mercato. It calls the internal services directly (not the BFF) \
                  as an admin, so it must run inside the cluster network, like the services. \
                  Exit codes: 0 ok, 1 refused or failed, 2 usage."
)]
pub struct Cli {
    #[command(flatten)]
    pub endpoints: Endpoints,
    /// Print the result as JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create demo data (accounts, products with stock, a coupon and a campaign); safe to rerun.
    Seed(SeedArgs),
    /// Coupon definitions.
    #[command(subcommand)]
    Coupon(CouponCommand),
    /// First-come-first-served coupon campaigns.
    #[command(subcommand)]
    Campaign(CampaignCommand),
    /// Orders.
    #[command(subcommand)]
    Order(OrderCommand),
    /// A consumer's dead-letter queue.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Payments.
    #[command(subcommand)]
    Payments(PaymentsCommand),
    /// Token-signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
}

/// `coupon …`.
#[derive(Debug, Subcommand)]
pub enum CouponCommand {
    /// Create a coupon definition.
    Create(CouponArgs),
}

/// `campaign …`.
#[derive(Debug, Subcommand)]
pub enum CampaignCommand {
    /// Create a campaign handing out a coupon.
    Create(CampaignArgs),
}

/// `order …`.
#[derive(Debug, Subcommand)]
pub enum OrderCommand {
    /// Show an order with its status history, payment and shipment.
    Show {
        /// The order id.
        order_id: String,
    },
}

/// `dlq …`.
#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// List dead letters without removing them.
    List {
        /// Messages to show at most.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        // Last: the broker flags' heading applies to everything after them.
        #[command(flatten)]
        target: DlqTarget,
    },
    /// Send dead letters back to their consumer with a fresh attempt count.
    #[command(group(clap::ArgGroup::new("which").required(true).args(["message_id", "all"])))]
    Replay {
        /// Replay only the message with this id.
        #[arg(long)]
        message_id: Option<String>,
        /// Replay every message in the DLQ.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        target: DlqTarget,
    },
}

/// `payments …`.
#[derive(Debug, Subcommand)]
pub enum PaymentsCommand {
    /// Settle payments stuck unsettled from the provider now.
    Reconcile(ReconcileArgs),
}

/// `keys …`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List the signing keys, newest first.
    List,
    /// Rotate: publish a new key that starts signing after the activation delay.
    Rotate(RotateArgs),
}

/// Runs `cli` and returns what to print on stdout; progress goes to `progress`.
pub async fn execute(cli: Cli, progress: &mut Progress) -> Result<String, CliError> {
    let json = cli.json;
    let operator = Operator::new(cli.endpoints);
    let out = match cli.command {
        Command::Seed(args) => {
            let report = seed::run(&operator, &args, progress).await?;
            pick(json, || report.to_json(), || report.to_table())
        }
        Command::Coupon(CouponCommand::Create(args)) => {
            let coupon = coupons::create_coupon(&operator, &args).await?;
            pick(
                json,
                || coupons::coupon_json(&coupon),
                || coupons::coupon_table(&coupon),
            )
        }
        Command::Campaign(CampaignCommand::Create(args)) => {
            let campaign = coupons::create_campaign(&operator, &args).await?;
            pick(
                json,
                || coupons::campaign_json(&campaign),
                || coupons::campaign_table(&campaign),
            )
        }
        Command::Order(OrderCommand::Show { order_id }) => {
            let details = orders::show(&operator, &order_id).await?;
            pick(json, || details.to_json(), || details.to_table())
        }
        Command::Dlq(DlqCommand::List { target, limit }) => {
            let listing = dlq::list(&target, limit).await?;
            pick(json, || listing.to_json(), || listing.to_table())
        }
        Command::Dlq(DlqCommand::Replay {
            target,
            message_id,
            all,
        }) => {
            let selection = match (message_id, all) {
                (Some(id), false) => Selection::Message(id),
                (None, true) => Selection::All,
                (Some(_), true) | (None, false) => {
                    return Err(CliError::Usage(
                        "give exactly one of --message-id and --all".to_owned(),
                    ));
                }
            };
            let report = dlq::replay(&target, &selection, progress).await?;
            pick(json, || report.to_json(), || report.to_line())
        }
        Command::Payments(PaymentsCommand::Reconcile(args)) => {
            let report = payments::reconcile(&operator, &args).await?;
            pick(
                json,
                || payments::report_json(&report),
                || payments::report_table(&report),
            )
        }
        Command::Keys(KeysCommand::List) => {
            let list = keys::list(&operator).await?;
            pick(
                json,
                || serde_json::Value::Array(list.iter().map(keys::key_json).collect()),
                || keys::keys_table(&list),
            )
        }
        Command::Keys(KeysCommand::Rotate(args)) => {
            let key = keys::rotate(&operator, &args).await?;
            pick(
                json,
                || keys::key_json(&key),
                || keys::keys_table(std::slice::from_ref(&key)),
            )
        }
    };
    Ok(out)
}

fn pick(
    json: bool,
    as_json: impl FnOnce() -> serde_json::Value,
    as_table: impl FnOnce() -> String,
) -> String {
    if json {
        json_document(&as_json())
    } else {
        as_table()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn replay_needs_exactly_one_selection() {
        let base = [
            "mercato",
            "dlq",
            "replay",
            "--service",
            "payment",
            "--consumer",
            "c",
        ];
        assert!(Cli::try_parse_from(base).is_err());
        assert!(
            Cli::try_parse_from(base.iter().copied().chain(["--all", "--message-id", "x"]))
                .is_err()
        );
        assert!(Cli::try_parse_from(base.iter().copied().chain(["--all"])).is_ok());
    }

    #[test]
    fn service_urls_come_from_flags_anywhere_on_the_line() {
        let cli = Cli::try_parse_from([
            "mercato",
            "keys",
            "list",
            "--user-url",
            "http://user:50051",
            "--json",
        ])
        .expect("parses");
        assert_eq!(cli.endpoints.user_url, "http://user:50051");
        assert!(cli.json);
    }
}
