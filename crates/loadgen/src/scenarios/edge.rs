//! The edge benchmark: a verified-token read through the BFF (JWT verified against the cached
//! JWKS, rate limit checked in Redis, principal forwarded) against the same read called directly
//! on the user service with the principal already in metadata, plus a bare tonic server as the
//! machine's RPC ceiling.

use anyhow::Context as _;
use mercato_platform::principal::{Principal, Role};
use mercato_proto::mercato::bff::v1 as bff;
use mercato_proto::mercato::user::v1 as user;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use uuid::Uuid;

use super::{connect_all, measure_hello};
use crate::measure::{LoadShape, PathResult, closed_loop};
use crate::report::{Ratio, Report};

/// Where the services under test listen.
#[derive(Debug, Clone)]
pub struct EdgeTargets {
    /// The BFF's gRPC port.
    pub bff: String,
    /// The user service's gRPC port.
    pub user: String,
    /// A bare tonic server (`mercato-loadgen hello-server`), if measured.
    pub hello: Option<String>,
}

/// Registers a fresh shopper through the BFF, then measures the three paths one after another.
pub async fn run(
    targets: &EdgeTargets,
    shape: LoadShape,
    channels: usize,
) -> anyhow::Result<Report> {
    let bff_channels = connect_all(&targets.bff, channels).await?;
    let user_channels = connect_all(&targets.user, channels).await?;
    let (token, user_id) = register(&bff_channels[0]).await?;

    let mut paths = Vec::new();
    if let Some(hello) = &targets.hello {
        let hello_channels = connect_all(hello, channels).await?;
        paths.push(measure_hello(hello_channels, shape).await?);
    }
    let direct = measure_direct(user_channels.clone(), user_id, shape).await?;
    let through_bff = measure_bff(bff_channels.clone(), &token, shape).await?;
    // One call at a time: latency without queueing, so the difference is the edge's own cost.
    let serial = LoadShape {
        concurrency: 1,
        ..shape
    };
    let direct_serial = measure_direct(user_channels, user_id, serial).await?;
    let bff_serial = measure_bff(bff_channels, &token, serial).await?;
    let ratios = vec![
        Ratio::new("bff / direct throughput", through_bff.rps, direct.rps),
        Ratio::new(
            "bff / direct p50 latency",
            through_bff.p50_us as f64,
            direct.p50_us as f64,
        ),
        Ratio::new(
            "bff / direct p99 latency",
            through_bff.p99_us as f64,
            direct.p99_us as f64,
        ),
        Ratio::new(
            "bff / direct p50 latency, one call at a time",
            bff_serial.p50_us as f64,
            direct_serial.p50_us as f64,
        ),
    ];
    let overhead_p50 = i128::from(bff_serial.p50_us) - i128::from(direct_serial.p50_us);
    paths.extend([direct, through_bff]);
    paths.extend([direct_serial, bff_serial].map(|mut path| {
        path.name.push_str(", one at a time");
        path
    }));
    let mut report = Report::new("edge", shape, channels, paths, ratios);
    report.note(format!(
        "edge overhead at p50, one call at a time: {overhead_p50} µs (JWT verification, the Redis \
         rate-limit script, principal forwarding and the extra hop)"
    ));
    Ok(report)
}

/// Registers `bench-<uuid>@example.com` and returns its access token and user id.
pub async fn register(channel: &Channel) -> anyhow::Result<(String, Uuid)> {
    let mut auth = bff::auth_service_client::AuthServiceClient::new(channel.clone());
    let response = auth
        .register(bff::RegisterRequest {
            email: format!("bench-{}@example.com", Uuid::new_v4().simple()),
            password: "benchmark-password".to_owned(),
            display_name: "Benchmark shopper".to_owned(),
        })
        .await
        .context("registering the benchmark shopper through the BFF")?
        .into_inner();
    let token = response
        .tokens
        .context("Register returned no tokens")?
        .access_token;
    let user_id = response
        .account
        .context("Register returned no account")?
        .user_id
        .parse()
        .context("Register returned a malformed user id")?;
    Ok((token, user_id))
}

async fn measure_direct(
    channels: Vec<Channel>,
    user_id: Uuid,
    shape: LoadShape,
) -> anyhow::Result<PathResult> {
    let principal = Principal::new(user_id, [Role::Buyer]);
    closed_loop("user.v1 GetCurrentUser (direct)", shape, move |worker| {
        let mut client = user::user_service_client::UserServiceClient::new(
            channels[worker % channels.len()].clone(),
        );
        let mut request = tonic::Request::new(user::GetCurrentUserRequest {});
        principal.write_metadata(request.metadata_mut());
        async move {
            client
                .get_current_user(request)
                .await
                .map(drop)
                .map_err(|status| status.code())
        }
    })
    .await
}

async fn measure_bff(
    channels: Vec<Channel>,
    token: &str,
    shape: LoadShape,
) -> anyhow::Result<PathResult> {
    let bearer: MetadataValue<_> = format!("Bearer {token}")
        .parse()
        .context("the access token is not a valid header value")?;
    closed_loop(
        "bff.v1 GetAccount (through the BFF)",
        shape,
        move |worker| {
            let mut client = bff::account_service_client::AccountServiceClient::new(
                channels[worker % channels.len()].clone(),
            );
            let mut request = tonic::Request::new(bff::GetAccountRequest {});
            request
                .metadata_mut()
                .insert("authorization", bearer.clone());
            async move {
                client
                    .get_account(request)
                    .await
                    .map(drop)
                    .map_err(|status| status.code())
            }
        },
    )
    .await
}
