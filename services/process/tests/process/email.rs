//! `NOTIFIER=smtp` against a real SMTP server (aiosmtpd, `make aiosmtpd`) and the real user
//! service in-process for the buyer's address: a paid order's three notifications arrive at the
//! buyer's address; a relay that is down is retried and the mail goes out when it returns; a 4xx
//! is retried until the maximum attempts, a 5xx fails at once; a redelivered order.paid sends
//! one e-mail per dedupe key; a deleted account is not written to; STARTTLS with AUTH and
//! implicit TLS reach a relay whose certificate the configured CA file vouches for.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use lettre::message::Mailbox;
use mercato_process::settings::{NotifierSink, Settings, SmtpSecurity, SmtpSettings, SmtpUrl};
use mercato_process::testing::{ReceivedMail, SmtpReply, SmtpServer, SmtpServerOptions};
use mercato_proto::mercato::common::v1::OrderStatus;
use mercato_proto::mercato::order::v1 as order_pb;
use mercato_proto::mercato::process::v1 as pb;
use mercato_proto::mercato::user::v1 as user_pb;
use mercato_user::testing::{RunningUser, TestEnv as UserEnv};
use secrecy::SecretString;
use user_pb::auth_service_client::AuthServiceClient;
use user_pb::user_service_client::UserServiceClient;
use uuid::Uuid;

use crate::shop::{PATIENCE, Shop, as_admin, as_buyer, eventually, order_paid};
use crate::support::channel;

/// The sender every test mail comes from.
const FROM: &str = "Mercato Shop <noreply@shop.example>";

/// A notification row as the tests read it.
#[derive(Debug, Clone, sqlx::FromRow)]
struct Row {
    notification_id: Uuid,
    kind: String,
    channel: String,
    recipient: String,
    status: String,
    attempt_count: i32,
    last_error: Option<String>,
}

/// A shop whose process service e-mails through `smtp`, looking addresses up in `users`.
struct Mailroom {
    shop: Shop,
    smtp: SmtpServer,
    users: RunningUser,
    // Dropped last: dropping it deletes the user database.
    _user_env: UserEnv,
}

/// The SMTP sink's settings for `smtp`, with its CA file and credentials when it has them.
fn smtp_settings(smtp: &SmtpServer, credentials: Option<(&str, &str)>) -> SmtpSettings {
    SmtpSettings {
        url: SmtpUrl::parse(&smtp.url()).expect("the test server's url parses"),
        username: credentials.map(|(user, _)| user.to_owned()),
        password: credentials.map(|(_, password)| SecretString::from(password.to_owned())),
        from: FROM.parse::<Mailbox>().expect("a valid sender"),
        tls_ca_file: smtp.ca_file(),
    }
}

impl Mailroom {
    async fn start() -> Self {
        Self::start_with(SmtpServer::start().await, None, |_| {}).await
    }

    async fn start_with(
        smtp: SmtpServer,
        credentials: Option<(&str, &str)>,
        configure: impl FnOnce(&mut Settings),
    ) -> Self {
        let user_env = UserEnv::new().await.expect("user test resources");
        let users = user_env.start(|_| {}).await.expect("user service starts");
        let sink = smtp_settings(&smtp, credentials);
        let user_service_url = users.grpc_uri();
        let shop = Shop::start_with(move |settings| {
            settings.user_service_url = user_service_url;
            settings.notifier.sink = NotifierSink::Smtp(Box::new(sink));
            settings.notifier.send_timeout = Duration::from_secs(10);
            configure(settings);
        })
        .await;
        Self {
            shop,
            smtp,
            users,
            _user_env: user_env,
        }
    }

    /// Registers a buyer at the user service; their id and e-mail address.
    async fn buyer(&self) -> (Uuid, String) {
        let email = format!("taro.{}@example.com", Uuid::new_v4().simple());
        let user = AuthServiceClient::new(channel(self.users.grpc_uri()))
            .register(user_pb::RegisterRequest {
                email: email.clone(),
                password: "a long enough test password".to_owned(),
                display_name: "Taro".to_owned(),
            })
            .await
            .expect("buyer registered")
            .into_inner()
            .user
            .expect("the new account");
        (
            Uuid::parse_str(&user.user_id).expect("user id is a uuid"),
            email,
        )
    }

    /// A paid order of one mug by `buyer`.
    async fn paid_order(&self, buyer: Uuid) -> order_pb::Order {
        let mug = self.shop.sku(1_500, 10).await;
        let order = self.shop.place(buyer, &mug, 2).await;
        self.shop.publish(&order_paid(&order)).await;
        order
    }

    /// The order's notifications, by kind.
    async fn rows(&self, order_id: &str) -> Vec<Row> {
        sqlx::query_as(
            "SELECT notification_id, kind, channel, recipient, status, attempt_count, last_error \
             FROM notifications WHERE order_id = $1 ORDER BY kind",
        )
        .bind(Uuid::parse_str(order_id).expect("order uuid"))
        .fetch_all(self.shop.pool())
        .await
        .expect("notifications")
    }

    /// Waits until the order has its three notifications and `done` holds for each; them then.
    async fn wait_for_rows(
        &self,
        order_id: &str,
        what: &str,
        done: impl Fn(&Row) -> bool,
    ) -> Vec<Row> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let rows = self.rows(order_id).await;
            if rows.len() == 3 && rows.iter().all(&done) {
                return rows;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the notifications of {order_id} never became {what}: {rows:#?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn subjects(mail: &[ReceivedMail]) -> BTreeSet<String> {
    mail.iter().map(|m| m.subject.clone()).collect()
}

fn expected_subjects(order_id: &str) -> BTreeSet<String> {
    ["confirmed", "shipped", "delivered"]
        .into_iter()
        .map(|what| format!("Order {order_id} {what}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paid_orders_three_notifications_are_emailed_to_the_buyers_address() {
    let room = Mailroom::start().await;
    let (buyer, email) = room.buyer().await;
    let order = room.paid_order(buyer).await;
    room.shop
        .wait_for_order(buyer, &order.order_id, OrderStatus::Finished)
        .await;

    let rows = room
        .wait_for_rows(&order.order_id, "SENT", |row| row.status == "SENT")
        .await;
    for row in &rows {
        assert_eq!(row.channel, "EMAIL", "{row:?}");
        assert_eq!(
            row.recipient, email,
            "the stored recipient is the address: {row:?}"
        );
        assert_eq!(row.attempt_count, 1, "{row:?}");
        assert_eq!(row.last_error, None, "{row:?}");
    }

    let mail = room.smtp.wait_for_mail(3).await;
    assert_eq!(mail.len(), 3, "{mail:#?}");
    assert_eq!(subjects(&mail), expected_subjects(&order.order_id));
    for message in &mail {
        assert_eq!(
            message.rcpt_tos,
            std::slice::from_ref(&email),
            "{message:?}"
        );
        assert_eq!(message.to, email, "{message:?}");
        assert_eq!(message.mail_from, "noreply@shop.example", "{message:?}");
        assert_eq!(message.from, FROM, "{message:?}");
        assert_eq!(message.content_type, "text/plain", "{message:?}");
        assert!(!message.tls && !message.authenticated, "{message:?}");
    }
    let shipment = room.shop.shipments_of(&order.order_id).await;
    let tracking_number = &shipment[0].2;
    let shipped = mail
        .iter()
        .find(|m| m.subject.ends_with("shipped"))
        .expect("the shipped mail");
    assert!(
        shipped.body.contains(tracking_number.as_str()) && shipped.body.contains("simulated"),
        "{shipped:?}"
    );
    let confirmed = mail
        .iter()
        .find(|m| m.subject.ends_with("confirmed"))
        .expect("the confirmed mail");
    assert!(
        confirmed.body.contains("We received your payment of 3000"),
        "{confirmed:?}"
    );
    // Each Message-ID names its notification, so a repeated delivery repeats the id.
    let ids: BTreeSet<String> = mail.iter().map(|m| m.message_id.clone()).collect();
    let expected: BTreeSet<String> = rows
        .iter()
        .map(|row| format!("<{}@shop.example>", row.notification_id))
        .collect();
    assert_eq!(ids, expected);

    // Operators see the address masked.
    let listed = room
        .shop
        .notifications
        .clone()
        .list_notifications(as_admin(pb::ListNotificationsRequest {
            order_id: order.order_id.clone(),
            ..Default::default()
        }))
        .await
        .expect("notifications listed")
        .into_inner()
        .notifications;
    assert_eq!(listed.len(), 3);
    for notification in listed {
        assert_eq!(notification.recipient, "t***@example.com");
        assert_eq!(notification.channel, pb::NotificationChannel::Email as i32);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_is_retried_while_the_relay_is_down_and_goes_out_when_it_returns() {
    let mut room = Mailroom::start_with(SmtpServer::start().await, None, |settings| {
        settings.notifier.max_attempts = 20;
    })
    .await;
    room.smtp.stop().await;
    let (buyer, email) = room.buyer().await;
    let order = room.paid_order(buyer).await;

    // Every notification fails at least twice against the refused port, and stays PENDING.
    let rows = room
        .wait_for_rows(&order.order_id, "retried", |row| {
            row.status == "PENDING" && row.attempt_count >= 2
        })
        .await;
    for row in &rows {
        let error = row.last_error.as_deref().unwrap_or_default();
        assert!(
            error.contains(&format!("127.0.0.1:{}", room.smtp.port())),
            "the error names the relay: {row:?}"
        );
        assert_eq!(row.recipient, email, "the address was found: {row:?}");
    }
    assert!(room.smtp.received().is_empty());

    room.smtp.restart().await;
    let rows = room
        .wait_for_rows(&order.order_id, "SENT", |row| row.status == "SENT")
        .await;
    assert!(
        rows.iter()
            .all(|row| row.attempt_count >= 3 && row.last_error.is_none()),
        "{rows:#?}"
    );
    let mail = room.smtp.wait_for_mail(3).await;
    assert_eq!(mail.len(), 3, "{mail:#?}");
    assert_eq!(subjects(&mail), expected_subjects(&order.order_id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_refusal_is_retried_until_the_maximum_attempts_then_fails() {
    let mut room = Mailroom::start_with(SmtpServer::start().await, None, |settings| {
        settings.notifier.max_attempts = 3;
    })
    .await;
    room.smtp
        .reply_with(SmtpReply::Line(
            "451 4.3.0 mailbox busy, try later".to_owned(),
        ))
        .await;
    let (buyer, _) = room.buyer().await;
    let order = room.paid_order(buyer).await;

    let rows = room
        .wait_for_rows(&order.order_id, "FAILED", |row| row.status == "FAILED")
        .await;
    for row in &rows {
        assert_eq!(row.attempt_count, 3, "tried the maximum: {row:?}");
        let error = row.last_error.as_deref().unwrap_or_default();
        assert!(
            error.contains("451") && error.contains("try later"),
            "{row:?}"
        );
    }
    assert_eq!(
        room.smtp.refused(),
        9,
        "three attempts each reached the relay"
    );
    assert!(room.smtp.received().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_refusal_fails_at_once_and_an_operator_retry_sends_it() {
    let mut room = Mailroom::start().await;
    room.smtp
        .reply_with(SmtpReply::Line("550 5.1.1 mailbox unavailable".to_owned()))
        .await;
    let (buyer, email) = room.buyer().await;
    let order = room.paid_order(buyer).await;

    let rows = room
        .wait_for_rows(&order.order_id, "FAILED", |row| row.status == "FAILED")
        .await;
    for row in &rows {
        assert_eq!(row.attempt_count, 1, "a 5xx is not retried: {row:?}");
        let error = row.last_error.as_deref().unwrap_or_default();
        assert!(
            error.contains("550") && error.contains("mailbox unavailable"),
            "{row:?}"
        );
        assert_eq!(row.recipient, email);
    }
    assert_eq!(room.smtp.refused(), 3);

    // Once the mailbox works again, RetryNotification sends one of them.
    room.smtp.reply_with(SmtpReply::Accept).await;
    let shipped = rows
        .iter()
        .find(|row| row.kind == "ORDER_SHIPPED")
        .expect("the shipped notification");
    room.shop
        .notifications
        .clone()
        .retry_notification(as_admin(pb::RetryNotificationRequest {
            notification_id: shipped.notification_id.to_string(),
        }))
        .await
        .expect("queued again");
    let mail = room.smtp.wait_for_mail(1).await;
    assert_eq!(mail.len(), 1);
    assert_eq!(mail[0].subject, format!("Order {} shipped", order.order_id));
    eventually("the retried notification is SENT", || async {
        room.rows(&order.order_id)
            .await
            .iter()
            .any(|row| row.notification_id == shipped.notification_id && row.status == "SENT")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_paid_delivered_again_sends_one_email_per_dedupe_key() {
    let room = Mailroom::start().await;
    let (buyer, email) = room.buyer().await;
    let mug = room.shop.sku(700, 5).await;
    let order = room.shop.place(buyer, &mug, 1).await;
    let paid = order_paid(&order);
    let mut copies = vec![paid.clone(), paid.clone()];
    for _ in 0..5 {
        let mut copy = paid.clone();
        copy.event_id = Uuid::now_v7().to_string();
        copies.push(copy);
    }
    futures::future::join_all(copies.iter().map(|envelope| room.shop.publish(envelope))).await;
    room.shop
        .wait_for_order(buyer, &order.order_id, OrderStatus::Finished)
        .await;
    eventually("every copy reached the inbox", || async {
        let seen: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM inbox WHERE consumer LIKE '%process.order-paid'",
        )
        .fetch_one(room.shop.pool())
        .await
        .expect("inbox count");
        seen == 6
    })
    .await;
    let rows = room
        .wait_for_rows(&order.order_id, "SENT", |row| row.status == "SENT")
        .await;
    assert!(rows.iter().all(|row| row.attempt_count == 1), "{rows:#?}");

    // Every row is SENT, so nothing more will be sent: what arrived is all there is.
    let mail = room.smtp.wait_for_mail(3).await;
    assert_eq!(mail.len(), 3, "one e-mail per dedupe key: {mail:#?}");
    assert_eq!(subjects(&mail), expected_subjects(&order.order_id));
    assert!(mail.iter().all(|m| m.rcpt_tos == [email.clone()]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_buyer_is_not_emailed_and_the_notification_fails_saying_why() {
    let room = Mailroom::start().await;
    let (buyer, _) = room.buyer().await;
    UserServiceClient::new(channel(room.users.grpc_uri()))
        .delete_current_user(as_buyer(user_pb::DeleteCurrentUserRequest {}, buyer))
        .await
        .expect("the account is deleted");
    let order = room.paid_order(buyer).await;

    let rows = room
        .wait_for_rows(&order.order_id, "FAILED", |row| row.status == "FAILED")
        .await;
    for row in &rows {
        assert_eq!(row.attempt_count, 1, "not retried: {row:?}");
        let error = row.last_error.as_deref().unwrap_or_default();
        assert!(
            error.contains(&buyer.to_string()) && error.contains("has no account"),
            "{row:?}"
        );
        assert_eq!(
            row.recipient,
            format!("user:{buyer}"),
            "no address was found"
        );
    }
    assert!(room.smtp.received().is_empty());
    assert_eq!(room.smtp.refused(), 0, "the relay was never asked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_with_auth_reaches_a_relay_the_ca_file_vouches_for() {
    let smtp = SmtpServer::start_with(SmtpServerOptions {
        security: Some(SmtpSecurity::StartTls),
        credentials: Some(("mercato".to_owned(), "relay password".to_owned())),
    })
    .await;
    assert!(smtp.url().starts_with("smtp+starttls://"), "{}", smtp.url());
    let room = Mailroom::start_with(smtp, Some(("mercato", "relay password")), |_| {}).await;
    let (buyer, email) = room.buyer().await;
    let order = room.paid_order(buyer).await;
    room.wait_for_rows(&order.order_id, "SENT", |row| row.status == "SENT")
        .await;
    let mail = room.smtp.wait_for_mail(3).await;
    assert_eq!(subjects(&mail), expected_subjects(&order.order_id));
    for message in &mail {
        assert!(message.tls && message.authenticated, "{message:?}");
        assert_eq!(message.rcpt_tos, std::slice::from_ref(&email));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn implicit_tls_reaches_the_relay_and_an_untrusted_certificate_is_retried_not_sent() {
    let smtp = SmtpServer::start_with(SmtpServerOptions {
        security: Some(SmtpSecurity::Tls),
        credentials: None,
    })
    .await;
    assert!(smtp.url().starts_with("smtps://"), "{}", smtp.url());
    let mut room = Mailroom::start_with(smtp, None, |_| {}).await;
    let (buyer, _) = room.buyer().await;
    let order = room.paid_order(buyer).await;
    room.wait_for_rows(&order.order_id, "SENT", |row| row.status == "SENT")
        .await;
    let mail = room.smtp.wait_for_mail(3).await;
    assert!(mail.iter().all(|m| m.tls && !m.authenticated), "{mail:#?}");

    // Without the CA file the relay's certificate is not trusted: nothing is sent in clear,
    // the attempt fails with a TLS error and is retried.
    room.shop.stop_process().await;
    let untrusted = {
        let mut sink = smtp_settings(&room.smtp, None);
        sink.tls_ca_file = None::<PathBuf>;
        sink
    };
    let user_service_url = room.users.grpc_uri();
    room.shop
        .start_process(move |settings| {
            settings.user_service_url = user_service_url;
            settings.notifier.sink = NotifierSink::Smtp(Box::new(untrusted));
            settings.notifier.max_attempts = 20;
        })
        .await;
    let order = room.paid_order(buyer).await;
    let rows = room
        .wait_for_rows(&order.order_id, "retried", |row| {
            row.status == "PENDING" && row.attempt_count >= 1
        })
        .await;
    for row in &rows {
        let error = row.last_error.as_deref().unwrap_or_default();
        assert!(
            error.contains("tls") || error.contains("certificate"),
            "{row:?}"
        );
    }
    assert_eq!(
        room.smtp.received().len(),
        3,
        "only the first order's mail arrived"
    );
}
