//! The login storm: signed-up shoppers logging in through the BFF at a constant rate (every
//! login verifies an argon2id hash, the service's most expensive operation), while one arrival in
//! ten is an attacker guessing one victim's password. Each offered rate is one run, so the report
//! plots login latency against the arrival rate and shows where hashing saturates the cores.
//!
//! Invariants: every shopper's login succeeds with tokens (never throttled, never refused);
//! every guess is refused — `UNAUTHENTICATED` while the victim's failure budget lasts, then
//! `RESOURCE_EXHAUSTED` / `LOGIN_THROTTLED` — and at most `max_failures` guesses per run are
//! answered UNAUTHENTICATED (each run starts on a fresh victim, so its budget is whole).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt as _;
use mercato_proto::mercato::bff::v1 as bff;
use tonic::transport::Channel;
use uuid::Uuid;

use super::connect_all;
use super::shop::PASSWORD;
use crate::measure::{Failure, OpenShape, PathResult, open_loop};
use crate::report::{LoadPoint, Report, Series, Table};

/// Where the BFF is.
#[derive(Debug, Clone)]
pub struct LoginStormTargets {
    /// The BFF's gRPC URI.
    pub bff: String,
}

/// How the storm is run.
#[derive(Debug, Clone)]
pub struct LoginStormOptions {
    /// Shoppers signed up first, logging in in turn.
    pub shoppers: usize,
    /// Logins per second, one run each.
    pub rates: Vec<f64>,
    /// Arrival window and warm-up of each run.
    pub warmup: Duration,
    /// The measured window.
    pub duration: Duration,
    /// Logins in flight at most; later arrivals are dropped and counted.
    pub max_in_flight: usize,
    /// The user service's `LOGIN_MAX_FAILURES`.
    pub max_failures: u64,
    /// HTTP/2 connections to the BFF.
    pub connections: usize,
}

/// Every tenth arrival is a guess at the victim's password.
const GUESS_EVERY: u64 = 10;
const THROTTLED: &str = "ResourceExhausted/LOGIN_THROTTLED";
/// How a guess ends its iteration, so it stays out of the shoppers' latencies.
const GUESS: &str = "(a guess, not a shopper's login)";

/// A guess's answers.
#[derive(Debug, Default)]
struct Guesses {
    refused: AtomicU64,
    throttled: AtomicU64,
    accepted: AtomicU64,
    other: AtomicU64,
}

/// Signs the shoppers up, then one run per rate on a fresh victim each.
pub async fn run(
    targets: &LoginStormTargets,
    options: &LoginStormOptions,
) -> anyhow::Result<Report> {
    anyhow::ensure!(
        !options.rates.is_empty(),
        "the storm needs at least one rate"
    );
    let channels = connect_all(&targets.bff, options.connections).await?;
    let emails: Vec<String> = futures::stream::iter(0..options.shoppers.max(1))
        .map(|i| sign_up(&channels[i % channels.len()]))
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    let emails = Arc::new(emails);
    let mut paths = Vec::new();
    let mut points = Vec::new();
    let mut rows = Vec::new();
    let mut violations = Vec::new();
    for &rate in &options.rates {
        let victim = sign_up(&channels[0]).await?;
        let guesses = Arc::new(Guesses::default());
        let storm = Arc::new(Storm {
            channels: channels.clone(),
            emails: Arc::clone(&emails),
            victim,
            guesses: Arc::clone(&guesses),
        });
        let shape = OpenShape {
            rate,
            warmup: options.warmup,
            duration: options.duration,
            max_in_flight: options.max_in_flight,
            drain: Duration::from_secs(60),
        };
        let path = without_guesses(
            open_loop(
                &format!("Login through the BFF @ {rate}/s (1 in {GUESS_EVERY} a wrong guess)"),
                shape,
                move |iteration| Arc::clone(&storm).run(iteration),
            )
            .await?,
        );
        let refused = guesses.refused.load(Ordering::Relaxed);
        let throttled = guesses.throttled.load(Ordering::Relaxed);
        let accepted = guesses.accepted.load(Ordering::Relaxed);
        let other = guesses.other.load(Ordering::Relaxed);
        if path.error_count() > 0 || path.dropped > 0 || path.unfinished > 0 {
            violations.push(format!(
                "@ {rate}/s: shoppers' logins failed: {:?}, {} dropped, {} unfinished",
                path.errors, path.dropped, path.unfinished
            ));
        }
        if accepted > 0 || other > 0 {
            violations.push(format!(
                "@ {rate}/s: {accepted} wrong guesses were accepted, {other} answered otherwise \
                 than refused or throttled"
            ));
        }
        if refused > options.max_failures {
            violations.push(format!(
                "@ {rate}/s: {refused} guesses at one account were checked and refused, more than \
                 its budget of {} failures before throttling",
                options.max_failures
            ));
        }
        rows.push(vec![
            format!("{rate}/s"),
            path.ok.to_string(),
            refused.to_string(),
            throttled.to_string(),
            (accepted + other).to_string(),
        ]);
        points.push(LoadPoint::of(&path));
        paths.push(path);
    }
    let shape = OpenShape {
        rate: 0.0,
        warmup: options.warmup,
        duration: options.duration,
        max_in_flight: options.max_in_flight,
        drain: Duration::from_secs(60),
    };
    let mut report = Report::open("login-storm", shape, options.connections, paths, Vec::new());
    report.table(Table {
        title: "Guesses at the victim's password per run (all arrivals, warm-up included)"
            .to_owned(),
        columns: [
            "rate",
            "shoppers' logins OK",
            "refused",
            "throttled",
            "other",
        ]
        .map(str::to_owned)
        .to_vec(),
        rows,
    });
    report.series = vec![Series {
        name: "Login".to_owned(),
        points,
    }];
    report.note(format!(
        "{} shoppers log in in turn with their password; every {GUESS_EVERY}th arrival is a \
         wrong guess at a victim signed up for the run (those are not in the latency row); the \
         user service's password hashing and login throttling are as deployed (the bench runs \
         them with their defaults)",
        emails.len()
    ));
    for violation in violations {
        report.violation(violation);
    }
    Ok(report)
}

/// Registers `bench-<uuid>@example.com` with [`PASSWORD`]; its e-mail.
async fn sign_up(channel: &Channel) -> anyhow::Result<String> {
    let email = format!("bench-{}@example.com", Uuid::new_v4().simple());
    bff::auth_service_client::AuthServiceClient::new(channel.clone())
        .register(bff::RegisterRequest {
            email: email.clone(),
            password: PASSWORD.to_owned(),
            display_name: "Benchmark shopper".to_owned(),
        })
        .await
        .map_err(|status| anyhow::anyhow!("registering a shopper: {status}"))?;
    Ok(email)
}

/// One arrival, shared by a run's iterations.
#[derive(Debug)]
struct Storm {
    channels: Vec<Channel>,
    emails: Arc<Vec<String>>,
    victim: String,
    guesses: Arc<Guesses>,
}

impl Storm {
    async fn run(self: Arc<Self>, iteration: u64) -> Result<(), Failure> {
        let index = iteration as usize;
        let mut auth = bff::auth_service_client::AuthServiceClient::new(
            self.channels[index % self.channels.len()].clone(),
        );
        if iteration % GUESS_EVERY == GUESS_EVERY - 1 {
            let answer = auth
                .login(bff::LoginRequest {
                    email: self.victim.clone(),
                    password: format!("wrong-{iteration}"),
                })
                .await;
            let counter = match answer {
                Ok(_) => &self.guesses.accepted,
                Err(status) if status.code() == tonic::Code::Unauthenticated => {
                    &self.guesses.refused
                }
                Err(status) if Failure::from(&status).0 == THROTTLED => &self.guesses.throttled,
                Err(_) => &self.guesses.other,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            // Guesses are tallied, not measured: the row is the shoppers' logins.
            return Err(Failure(GUESS.to_owned()));
        }
        let email = &self.emails[index % self.emails.len()];
        let response = auth
            .login(bff::LoginRequest {
                email: email.clone(),
                password: PASSWORD.to_owned(),
            })
            .await
            .map_err(Failure::from)?
            .into_inner();
        match response.tokens {
            Some(tokens) if !tokens.access_token.is_empty() => Ok(()),
            _ => Err(Failure("Login OK without tokens".to_owned())),
        }
    }
}

/// `path` without the guesses, which it counted as failures to keep them out of the latencies.
fn without_guesses(mut path: PathResult) -> PathResult {
    path.errors.remove(GUESS);
    path
}
