//! `coupon create` and `campaign create`: the order service's `CouponService.CreateCoupon` and
//! `CreateCampaign`, as the operator.
//!
//! The flags map one to one onto the request; value rules (ranges, currency, which fields go with
//! which kind) are the server's, so a refusal names the request field the server checked, e.g.
//! `coupon.fixed_discount.amount_minor`. Money is integer minor units in `--currency`.

use chrono::{DateTime, Utc};
use mercato_proto::mercato::common::v1 as common;
use mercato_proto::mercato::order::v1 as order;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::connect::Operator;
use crate::error::{Answer as _, CliError};
use crate::render::{self, Table};

/// How a coupon's discount is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CouponKind {
    /// A fixed amount off (`--amount-off`).
    Fixed,
    /// A percentage off (`--percent-off`, optionally capped by `--max-discount`).
    Percent,
}

/// `coupon create` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct CouponArgs {
    /// Name shown to users (1-100 characters).
    #[arg(long)]
    pub name: String,
    /// Longer explanation (at most 500 characters).
    #[arg(long, default_value = "")]
    pub description: String,
    /// How the discount is computed.
    #[arg(long, value_enum)]
    pub kind: CouponKind,
    /// Amount off for a fixed coupon, in minor units.
    #[arg(long, allow_negative_numbers = true)]
    pub amount_off: Option<i64>,
    /// Percentage off for a percent coupon (1-100).
    #[arg(long, allow_negative_numbers = true)]
    pub percent_off: Option<i32>,
    /// Cap of a percent coupon's discount, in minor units.
    #[arg(long, allow_negative_numbers = true)]
    pub max_discount: Option<i64>,
    /// Smallest order subtotal the coupon applies to, in minor units.
    #[arg(long, allow_negative_numbers = true)]
    pub minimum_order: Option<i64>,
    /// Days a held coupon stays usable (1-3650).
    #[arg(long, allow_negative_numbers = true)]
    pub validity_days: i32,
    /// Currency of every amount (the shop currency).
    #[arg(long, env = "MERCATO_CURRENCY", default_value = "JPY")]
    pub currency: String,
    /// Makes a retry safe: the same key returns the coupon the first call created (default: a
    /// fresh UUID).
    #[arg(long)]
    pub idempotency_key: Option<String>,
}

/// `campaign create` flags.
#[derive(Debug, Clone, clap::Args)]
#[command(group(clap::ArgGroup::new("window_end").required(true).args(["end", "duration"])))]
pub struct CampaignArgs {
    /// Id of the coupon the campaign hands out.
    #[arg(long)]
    pub coupon_id: String,
    /// Name shown to users (1-100 characters).
    #[arg(long)]
    pub name: String,
    /// Coupons the campaign may issue in total.
    #[arg(long, allow_negative_numbers = true)]
    pub quantity: i64,
    /// Claims are accepted from this time (RFC 3339; default: now).
    #[arg(long)]
    pub start: Option<DateTime<Utc>>,
    /// Claims are refused from this time (RFC 3339).
    #[arg(long)]
    pub end: Option<DateTime<Utc>>,
    /// The window's length from the start instead of `--end`, e.g. `168h`.
    #[arg(long, value_parser = mercato_platform::settings::parse_duration)]
    pub duration: Option<std::time::Duration>,
    /// Makes a retry safe (default: a fresh UUID).
    #[arg(long)]
    pub idempotency_key: Option<String>,
}

fn money(amount_minor: Option<i64>, currency: &str) -> Option<common::Money> {
    amount_minor.map(|amount_minor| common::Money {
        currency_code: currency.to_owned(),
        amount_minor,
    })
}

/// The coupon `args` describe, as CreateCoupon reads it.
pub fn coupon_of(args: &CouponArgs) -> order::Coupon {
    let kind = match args.kind {
        CouponKind::Fixed => common::CouponKind::Fixed,
        CouponKind::Percent => common::CouponKind::Percent,
    };
    order::Coupon {
        name: args.name.clone(),
        description: args.description.clone(),
        kind: kind.into(),
        fixed_discount: money(args.amount_off, &args.currency),
        percent_off: args.percent_off.unwrap_or(0),
        max_discount: money(args.max_discount, &args.currency),
        minimum_order_amount: money(args.minimum_order, &args.currency),
        validity_days: args.validity_days,
        ..order::Coupon::default()
    }
}

/// Creates the coupon `args` describe.
pub async fn create_coupon(
    operator: &Operator,
    args: &CouponArgs,
) -> Result<order::Coupon, CliError> {
    let request = order::CreateCouponRequest {
        coupon: Some(coupon_of(args)),
        idempotency_key: key_or_fresh(args.idempotency_key.as_deref()),
    };
    operator
        .coupons()?
        .create_coupon(operator.request(request))
        .await
        .answer("CouponService.CreateCoupon")?
        .coupon
        .ok_or_else(|| CliError::Failed("CreateCoupon answered without the coupon".to_owned()))
}

/// The campaign `args` describe, with its window resolved against `now`.
pub fn campaign_of(
    args: &CampaignArgs,
    now: DateTime<Utc>,
) -> Result<order::CouponCampaign, CliError> {
    let start = args.start.unwrap_or(now);
    let end = match (args.end, args.duration) {
        (Some(end), _) => end,
        (None, Some(duration)) => {
            let length = chrono::Duration::from_std(duration)
                .map_err(|_| CliError::Usage(format!("--duration {duration:?} is too long")))?;
            start + length
        }
        (None, None) => {
            return Err(CliError::Usage(
                "--end or --duration is required".to_owned(),
            ));
        }
    };
    Ok(order::CouponCampaign {
        coupon_id: args.coupon_id.clone(),
        name: args.name.clone(),
        start_time: Some(render::timestamp(start)),
        end_time: Some(render::timestamp(end)),
        total_quantity: args.quantity,
        ..order::CouponCampaign::default()
    })
}

/// Creates the campaign `args` describe.
pub async fn create_campaign(
    operator: &Operator,
    args: &CampaignArgs,
) -> Result<order::CouponCampaign, CliError> {
    let request = order::CreateCampaignRequest {
        campaign: Some(campaign_of(args, Utc::now())?),
        idempotency_key: key_or_fresh(args.idempotency_key.as_deref()),
    };
    operator
        .coupons()?
        .create_campaign(operator.request(request))
        .await
        .answer("CouponService.CreateCampaign")?
        .campaign
        .ok_or_else(|| CliError::Failed("CreateCampaign answered without the campaign".to_owned()))
}

/// Every coupon definition, newest first (all pages).
pub async fn list_coupons(operator: &Operator) -> Result<Vec<order::Coupon>, CliError> {
    let mut client = operator.coupons()?;
    let mut coupons = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_coupons(operator.request(order::ListCouponsRequest {
                page_size: 100,
                page_token,
            }))
            .await
            .answer("CouponService.ListCoupons")?;
        coupons.extend(page.coupons);
        if page.next_page_token.is_empty() {
            return Ok(coupons);
        }
        page_token = page.next_page_token;
    }
}

/// Every campaign, ended ones included (all pages).
pub async fn list_campaigns(operator: &Operator) -> Result<Vec<order::CouponCampaign>, CliError> {
    let mut client = operator.coupons()?;
    let mut campaigns = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_campaigns(operator.request(order::ListCampaignsRequest {
                page_size: 100,
                page_token,
                include_ended: true,
            }))
            .await
            .answer("CouponService.ListCampaigns")?;
        campaigns.extend(page.campaigns);
        if page.next_page_token.is_empty() {
            return Ok(campaigns);
        }
        page_token = page.next_page_token;
    }
}

/// The given key, or a fresh UUID.
pub(crate) fn key_or_fresh(key: Option<&str>) -> String {
    key.map_or_else(|| Uuid::new_v4().to_string(), str::to_owned)
}

/// A coupon as JSON.
pub fn coupon_json(coupon: &order::Coupon) -> Value {
    json!({
        "coupon_id": coupon.coupon_id,
        "name": coupon.name,
        "description": coupon.description,
        "kind": render::coupon_kind(coupon.kind),
        "fixed_discount": render::money_json(coupon.fixed_discount.as_ref()),
        "percent_off": coupon.percent_off,
        "max_discount": render::money_json(coupon.max_discount.as_ref()),
        "minimum_order_amount": render::money_json(coupon.minimum_order_amount.as_ref()),
        "validity_days": coupon.validity_days,
        "create_time": render::time_json(coupon.create_time.as_ref()),
    })
}

/// A coupon as a two-column table.
pub fn coupon_table(coupon: &order::Coupon) -> String {
    let discount = match common::CouponKind::try_from(coupon.kind) {
        Ok(common::CouponKind::Percent) => format!(
            "{}% (cap {})",
            coupon.percent_off,
            render::money(coupon.max_discount.as_ref())
        ),
        _ => render::money(coupon.fixed_discount.as_ref()),
    };
    let mut table = Table::default();
    table.row(["coupon".to_owned(), coupon.coupon_id.clone()]);
    table.row(["name".to_owned(), coupon.name.clone()]);
    table.row(["kind".to_owned(), render::coupon_kind(coupon.kind)]);
    table.row(["discount".to_owned(), discount]);
    table.row([
        "minimum order".to_owned(),
        render::money(coupon.minimum_order_amount.as_ref()),
    ]);
    table.row([
        "validity".to_owned(),
        format!("{} days", coupon.validity_days),
    ]);
    table.row([
        "created".to_owned(),
        render::time(coupon.create_time.as_ref()),
    ]);
    table.render()
}

/// A campaign as JSON.
pub fn campaign_json(campaign: &order::CouponCampaign) -> Value {
    json!({
        "campaign_id": campaign.campaign_id,
        "coupon_id": campaign.coupon_id,
        "name": campaign.name,
        "start_time": render::time_json(campaign.start_time.as_ref()),
        "end_time": render::time_json(campaign.end_time.as_ref()),
        "total_quantity": campaign.total_quantity,
        "issued_quantity": campaign.issued_quantity,
        "remaining_quantity": campaign.remaining_quantity,
    })
}

/// A campaign as a two-column table.
pub fn campaign_table(campaign: &order::CouponCampaign) -> String {
    let mut table = Table::default();
    table.row(["campaign".to_owned(), campaign.campaign_id.clone()]);
    table.row(["coupon".to_owned(), campaign.coupon_id.clone()]);
    table.row(["name".to_owned(), campaign.name.clone()]);
    table.row([
        "window".to_owned(),
        format!(
            "{} .. {}",
            render::time(campaign.start_time.as_ref()),
            render::time(campaign.end_time.as_ref())
        ),
    ]);
    table.row([
        "quantity".to_owned(),
        format!(
            "{} ({} issued, {} left)",
            campaign.total_quantity, campaign.issued_quantity, campaign.remaining_quantity
        ),
    ]);
    table.render()
}
