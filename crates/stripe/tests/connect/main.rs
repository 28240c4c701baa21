//! Connect through the testing harness: the adapter against the proxy's Connect stand-in
//! (`mercato_stripe::testing::Connect`, which localstripe lacks) with transfers funded by real
//! localstripe charges. Seller onboarding (account, onboarding link, the seller finishing it,
//! the dashboard link), transfers from a paid charge and their reversals, the stand-in's
//! refusals, its idempotency replay and the faults it injects.
//!
//! These pin what the payment service relies on when it runs against the harness; the shapes
//! and fields Stripe documents are pinned by `tests/contract`.

use mercato_stripe::testing::{ConnectCall, Fault, LocalStripe, TestCard};
use mercato_stripe::{
    AccountKind, AccountLinkKind, CapabilityStatus, NewAccount, NewAccountLink, NewPaymentIntent,
    NewTransfer, NewTransferReversal, StripeClient, StripeError, TransferQuery,
};

fn new_account(seller: &str) -> NewAccount {
    NewAccount {
        kind: AccountKind::Express,
        country: "JP".to_owned(),
        seller_id: seller.to_owned(),
        email: None,
        idempotency_key: format!("mercato-seller-account-{seller}"),
    }
}

fn onboarding(account: &str) -> NewAccountLink {
    NewAccountLink {
        account: account.to_owned(),
        kind: AccountLinkKind::Onboarding,
        return_url: "http://127.0.0.1:5173/seller/payouts".to_owned(),
        refresh_url: "http://127.0.0.1:5173/seller/payouts/refresh".to_owned(),
    }
}

/// A paid localstripe PaymentIntent of `amount` euro cents; its charge id.
async fn paid_charge(stripe: &LocalStripe, order: &str, amount: i64) -> String {
    let client = stripe.client();
    let created = client
        .create_payment_intent(&NewPaymentIntent {
            amount,
            currency: "eur".to_owned(),
            order_id: order.to_owned(),
            payment_id: None,
            idempotency_key: format!("order-{order}"),
            transfer_group: None,
        })
        .await
        .expect("the payment intent is created");
    let confirmed = stripe
        .confirm_payment_intent(&created.id, TestCard::Visa)
        .await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.body);
    client
        .retrieve_payment_intent(&created.id)
        .await
        .expect("the paid intent")
        .latest_charge
        .expect("a paid intent has a charge")
}

/// An onboarded seller account; its id.
async fn onboarded(stripe: &LocalStripe, client: &StripeClient, seller: &str) -> String {
    let account = client
        .create_account(&new_account(seller))
        .await
        .expect("the account is created");
    stripe.connect().complete_onboarding(&account.id);
    account.id
}

fn transfer(destination: &str, amount: i64, charge: Option<&str>, key: &str) -> NewTransfer {
    NewTransfer {
        amount,
        currency: "eur".to_owned(),
        destination: destination.to_owned(),
        transfer_group: Some("order_connect".to_owned()),
        source_transaction: charge.map(str::to_owned),
        payout_id: Some(format!("payout-{key}")),
        idempotency_key: key.to_owned(),
    }
}

fn api_code(err: &StripeError) -> (u16, Option<String>, Option<String>) {
    let api = err
        .api()
        .unwrap_or_else(|| panic!("stripe's error object: {err:?}"));
    (api.status, api.code.clone(), api.param.clone())
}

#[tokio::test]
async fn a_seller_is_onboarded_through_a_link_and_then_gets_a_dashboard_link() {
    let stripe = LocalStripe::start().await;
    let client = stripe.client();

    let account = client
        .create_account(&new_account("seller-1"))
        .await
        .expect("the account is created");
    assert!(account.id.starts_with("acct_"), "{account:?}");
    assert_eq!(account.country.as_deref(), Some("JP"));
    assert_eq!(account.seller_id.as_deref(), Some("seller-1"));
    assert_eq!(account.transfers, CapabilityStatus::Inactive);
    assert!(!account.payouts_enabled && !account.details_submitted);

    let link = client
        .create_account_link(&onboarding(&account.id))
        .await
        .expect("an onboarding link");
    assert!(
        link.url.starts_with("https://connect.stripe.com/setup/"),
        "{link:?}"
    );
    assert!(link.expires_at > link.created);
    let err = client
        .create_login_link(&account.id)
        .await
        .expect_err("no dashboard before onboarding");
    assert_eq!(api_code(&err).0, 400);

    stripe.connect().complete_onboarding(&account.id);
    let now = client
        .retrieve_account(&account.id)
        .await
        .expect("the account is read");
    assert!(now.charges_enabled && now.payouts_enabled && now.details_submitted);
    assert_eq!(now.transfers, CapabilityStatus::Active);
    let dashboard = client
        .create_login_link(&account.id)
        .await
        .expect("a dashboard link");
    assert!(
        dashboard
            .url
            .starts_with("https://connect.stripe.com/express/"),
        "{dashboard:?}"
    );

    stripe.connect().restrict(&account.id);
    let restricted = client
        .retrieve_account(&account.id)
        .await
        .expect("the account is read");
    assert!(!restricted.payouts_enabled && restricted.details_submitted);
    assert_eq!(restricted.transfers, CapabilityStatus::Inactive);
}

#[tokio::test]
async fn an_unsupported_country_an_unknown_account_and_an_update_link_are_refused() {
    let stripe = LocalStripe::start().await;
    let client = stripe.client();

    let err = client
        .create_account(&NewAccount {
            country: "KP".to_owned(),
            ..new_account("seller-kp")
        })
        .await
        .expect_err("refused");
    assert_eq!(
        api_code(&err),
        (
            400,
            Some("country_unsupported".to_owned()),
            Some("country".to_owned())
        )
    );
    let err = client
        .retrieve_account("acct_1Unknown000000001")
        .await
        .expect_err("no such account");
    assert!(err.is_not_found(), "{err}");
    let err = client
        .create_account_link(&onboarding("acct_1Unknown000000001"))
        .await
        .expect_err("no such account");
    assert_eq!(api_code(&err).2.as_deref(), Some("account"));
    let account = client
        .create_account(&new_account("seller-2"))
        .await
        .expect("the account is created");
    let err = client
        .create_account_link(&NewAccountLink {
            kind: AccountLinkKind::Update,
            ..onboarding(&account.id)
        })
        .await
        .expect_err("stripe collects this account's requirements");
    assert_eq!(api_code(&err).2.as_deref(), Some("type"));
}

#[tokio::test]
async fn a_paid_charge_funds_transfers_up_to_its_amount_and_reversals_take_them_back() {
    let stripe = LocalStripe::start().await;
    let client = stripe.client();
    let charge = paid_charge(&stripe, "order-funded", 2_000).await;
    let account = onboarded(&stripe, &client, "seller-3").await;

    let made = client
        .create_transfer(&transfer(&account, 1_500, Some(&charge), "t-1"))
        .await
        .expect("the transfer is made");
    assert_eq!((made.amount, made.amount_reversed), (1_500, 0));
    assert_eq!(made.source_transaction.as_deref(), Some(charge.as_str()));
    assert_eq!(made.payout_id.as_deref(), Some("payout-t-1"));
    let err = client
        .create_transfer(&transfer(&account, 501, Some(&charge), "t-2"))
        .await
        .expect_err("more than the charge");
    assert_eq!(api_code(&err).2.as_deref(), Some("amount"));
    let err = client
        .create_transfer(&transfer(&account, 100, Some("ch_1Unknown"), "t-3"))
        .await
        .expect_err("no such charge");
    assert_eq!(api_code(&err).2.as_deref(), Some("source_transaction"));

    let part = client
        .reverse_transfer(&NewTransferReversal {
            transfer: made.id.clone(),
            amount: Some(600),
            idempotency_key: "r-1".to_owned(),
        })
        .await
        .expect("a partial reversal");
    assert_eq!(part.amount, 600);
    let rest = client
        .reverse_transfer(&NewTransferReversal {
            transfer: made.id.clone(),
            amount: None,
            idempotency_key: "r-2".to_owned(),
        })
        .await
        .expect("the rest");
    assert_eq!(rest.amount, 900);
    let after = client
        .retrieve_transfer(&made.id)
        .await
        .expect("the transfer");
    assert_eq!((after.amount_reversed, after.reversed), (1_500, true));
    let err = client
        .reverse_transfer(&NewTransferReversal {
            transfer: made.id.clone(),
            amount: None,
            idempotency_key: "r-3".to_owned(),
        })
        .await
        .expect_err("nothing left");
    assert_eq!(api_code(&err).0, 400);

    let listed = client
        .list_transfers(&TransferQuery {
            transfer_group: Some("order_connect".to_owned()),
            destination: Some(account.clone()),
            limit: Some(100),
        })
        .await
        .expect("the group's transfers");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, made.id);
}

#[tokio::test]
async fn a_destination_must_have_finished_onboarding() {
    let stripe = LocalStripe::start().await;
    let client = stripe.client();
    let account = client
        .create_account(&new_account("seller-4"))
        .await
        .expect("the account is created");

    let err = client
        .create_transfer(&transfer(&account.id, 100, None, "t-4"))
        .await
        .expect_err("transfers are not active yet");
    assert_eq!(
        api_code(&err),
        (
            400,
            Some("insufficient_capabilities_for_transfer".to_owned()),
            Some("destination".to_owned())
        )
    );
    assert!(stripe.connect().transfers().is_empty());
}

#[tokio::test]
async fn a_key_replays_its_transfer_unless_keys_are_ignored_like_localstripe_does() {
    let stripe = LocalStripe::start().await;
    let client = stripe.client();
    let account = onboarded(&stripe, &client, "seller-5").await;
    let new = transfer(&account, 300, None, "t-5");

    let first = client.create_transfer(&new).await.expect("made");
    let again = client.create_transfer(&new).await.expect("replayed");
    assert_eq!(first.id, again.id);
    assert_eq!(stripe.connect().transfers().len(), 1);
    let err = client
        .create_transfer(&NewTransfer {
            amount: 301,
            ..new.clone()
        })
        .await
        .expect_err("the key belongs to another request");
    assert_eq!(
        err.api().map(|api| api.kind.as_str().to_owned()).as_deref(),
        Some("idempotency_error")
    );

    stripe.connect().ignore_idempotency_keys(true);
    let second = client.create_transfer(&new).await.expect("made again");
    assert_ne!(second.id, first.id);
    assert_eq!(stripe.connect().transfers().len(), 2);
}

#[tokio::test]
async fn a_lost_answer_leaves_a_transfer_that_a_retry_with_the_key_gets_back() {
    let stripe = LocalStripe::start().await;
    let client = stripe.client();
    let account = onboarded(&stripe, &client, "seller-6").await;
    let new = transfer(&account, 300, None, "t-6");

    stripe
        .connect()
        .fail_next(ConnectCall::CreateTransfer, Fault::LoseAnswer);
    let err = client
        .create_transfer(&new)
        .await
        .expect_err("the answer is lost");
    assert!(err.is_retryable(), "{err}");
    assert_eq!(
        stripe.connect().transfers().len(),
        1,
        "it happened all the same"
    );
    let retried = client.create_transfer(&new).await.expect("the replay");
    assert_eq!(stripe.connect().transfers().len(), 1);
    assert_eq!(
        stripe.connect().transfers()[0]["id"].as_str(),
        Some(retried.id.as_str())
    );

    stripe
        .connect()
        .fail_next(ConnectCall::CreateTransfer, Fault::Unavailable);
    let err = client
        .create_transfer(&transfer(&account, 200, None, "t-7"))
        .await
        .expect_err("unavailable");
    assert!(err.is_retryable(), "{err}");
    assert_eq!(stripe.connect().transfers().len(), 1, "nothing happened");
    assert_eq!(stripe.connect().calls(ConnectCall::CreateTransfer), 3);
}
