//! The caller's points wallet (`mercato.bff.v1.WalletService`), backed by the payment service's
//! `WalletService`. Every RPC acts on the token's subject: no request names a user, and the
//! payment service takes the wallet's owner from the forwarded principal (without the admin
//! role, as for orders: an admin's wallet here is their own).
//!
//! The BFF holds no wallet rules. The payment service refuses a charge that is not 1-1,000,000
//! points (`INVALID_ARGUMENT` / `VALIDATION_FAILED` naming `amount.amount_minor`, or `amount`
//! when it is missing), in another currency (`CURRENCY_MISMATCH`), without a valid
//! `idempotency_key`, or that would take the balance past its maximum
//! (`FAILED_PRECONDITION` / `WALLET_LIMIT_EXCEEDED`); those refusals write nothing and reach the
//! browser with their details. A replayed key returns the first charge's entry.

use mercato_platform::grpc::ClientChannel;
use mercato_proto::mercato::bff::v1 as bff;
use mercato_proto::mercato::payment::v1 as payment;
use payment::wallet_service_client::WalletServiceClient;
use tonic::{Request, Response, Status};

use crate::error::{broken_contract, downstream};
use crate::order::{as_buyer, buyer};

/// `mercato.bff.v1.WalletService`.
#[derive(Debug, Clone)]
pub struct WalletGrpc {
    wallets: WalletServiceClient<ClientChannel>,
}

impl WalletGrpc {
    /// The handler over a payment-service channel.
    pub fn new(channel: ClientChannel) -> Self {
        Self {
            wallets: WalletServiceClient::new(channel),
        }
    }
}

/// A wallet as its owner sees it (the version stays internal).
fn public_wallet(wallet: payment::Wallet) -> bff::Wallet {
    let payment::Wallet {
        balance,
        version: _,
        update_time,
    } = wallet;
    bff::Wallet {
        balance,
        update_time,
    }
}

/// A ledger entry as the wallet's owner sees it (the payment id stays internal; the order id
/// says what was paid or refunded).
fn public_entry(entry: payment::LedgerEntry) -> bff::LedgerEntry {
    let payment::LedgerEntry {
        entry_id,
        kind,
        amount,
        balance_after,
        order_id,
        payment_id: _,
        create_time,
    } = entry;
    bff::LedgerEntry {
        entry_id,
        kind,
        amount,
        balance_after,
        order_id,
        create_time,
    }
}

fn wallet_of(found: Option<payment::Wallet>, what: &str) -> Result<bff::Wallet, Status> {
    found
        .map(public_wallet)
        .ok_or_else(|| broken_contract(what))
}

#[tonic::async_trait]
impl bff::wallet_service_server::WalletService for WalletGrpc {
    async fn get_wallet(
        &self,
        request: Request<bff::GetWalletRequest>,
    ) -> Result<Response<bff::GetWalletResponse>, Status> {
        let buyer = buyer(&request)?;
        let bff::GetWalletRequest {} = request.into_inner();
        let payment::GetWalletResponse { wallet } = self
            .wallets
            .clone()
            .get_wallet(as_buyer(&buyer, payment::GetWalletRequest {}))
            .await
            .map_err(downstream)?
            .into_inner();
        Ok(Response::new(bff::GetWalletResponse {
            wallet: Some(wallet_of(wallet, "GetWalletResponse.wallet")?),
        }))
    }

    async fn charge_points(
        &self,
        request: Request<bff::ChargePointsRequest>,
    ) -> Result<Response<bff::ChargePointsResponse>, Status> {
        let buyer = buyer(&request)?;
        let bff::ChargePointsRequest {
            amount,
            idempotency_key,
        } = request.into_inner();
        let payment::ChargePointsResponse { wallet, entry } = self
            .wallets
            .clone()
            .charge_points(as_buyer(
                &buyer,
                payment::ChargePointsRequest {
                    amount,
                    idempotency_key,
                },
            ))
            .await
            .map_err(downstream)?
            .into_inner();
        Ok(Response::new(bff::ChargePointsResponse {
            wallet: Some(wallet_of(wallet, "ChargePointsResponse.wallet")?),
            entry: Some(
                entry
                    .map(public_entry)
                    .ok_or_else(|| broken_contract("ChargePointsResponse.entry"))?,
            ),
        }))
    }

    async fn list_ledger_entries(
        &self,
        request: Request<bff::ListLedgerEntriesRequest>,
    ) -> Result<Response<bff::ListLedgerEntriesResponse>, Status> {
        let buyer = buyer(&request)?;
        let bff::ListLedgerEntriesRequest {
            page_size,
            page_token,
            kinds,
        } = request.into_inner();
        let payment::ListLedgerEntriesResponse {
            entries,
            next_page_token,
        } = self
            .wallets
            .clone()
            .list_ledger_entries(as_buyer(
                &buyer,
                payment::ListLedgerEntriesRequest {
                    page_size,
                    page_token,
                    kinds,
                },
            ))
            .await
            .map_err(downstream)?
            .into_inner();
        Ok(Response::new(bff::ListLedgerEntriesResponse {
            entries: entries.into_iter().map(public_entry).collect(),
            next_page_token,
        }))
    }
}
