//! The operator console (`mercato.bff.v1.AdminService`). Every RPC requires ROLE_ADMIN, checked
//! here before any service is called; the user named by `target_user_id` is the one acted on,
//! never the caller.
//!
//! Accounts and roles are served by the user service, products by the product service, orders
//! and coupons by the order service (`OrderService` and `CouponService`, with the admin's own
//! principal: the order service checks ROLE_ADMIN again, records an admin cancellation as
//! ADMIN_REQUESTED and scopes the coupon idempotency keys to the admin). `IssueCoupon` checks
//! with the user service that the receiving account exists before the coupon is issued.
//! Payments are served by the payment service with the admin's principal (it checks ROLE_ADMIN
//! again and scopes refund idempotency keys to the admin); admin views of a payment never carry
//! its client secret. Shipments are served by the process service's `ShipmentService` with the
//! admin's principal (it checks ROLE_ADMIN again); the request fields have the same names on
//! both sides, so its refusals name the public fields as they are. The admin view of a shipment
//! leaves out the buyer's id, the address, the lines and the tracking URL.

use mercato_platform::grpc::ClientChannel;
use mercato_platform::principal::{self, Role};
use mercato_proto::mercato::bff::v1 as bff;
use mercato_proto::mercato::order::v1 as order;
use mercato_proto::mercato::payment::v1 as payment;
use mercato_proto::mercato::process::v1 as process;
use mercato_proto::mercato::product::v1 as product;
use mercato_proto::mercato::user::v1 as user;
use order::coupon_service_client::CouponServiceClient;
use order::order_service_client::OrderServiceClient;
use payment::payment_service_client::PaymentServiceClient;
use process::shipment_service_client::ShipmentServiceClient;
use product::product_service_client::ProductServiceClient;
use tonic::{Request, Response, Status};
use user::user_service_client::UserServiceClient;

use crate::catalog::{product_from_input, public_product};
use crate::coupon::{
    campaign_of, internal_campaign, internal_coupon, public_coupon, user_coupon_of,
};
use crate::error::{broken_contract, downstream, missing_field};
use crate::grpc::account;
use crate::order::{View, order_of, public_order};
use crate::payment::{payment_of, public_payment};

/// `mercato.bff.v1.AdminService`.
#[derive(Debug, Clone)]
pub struct AdminGrpc {
    users: UserServiceClient<ClientChannel>,
    products: ProductServiceClient<ClientChannel>,
    orders: OrderServiceClient<ClientChannel>,
    coupons: CouponServiceClient<ClientChannel>,
    payments: PaymentServiceClient<ClientChannel>,
    shipments: ShipmentServiceClient<ClientChannel>,
}

/// The service channels the admin console calls.
#[derive(Debug, Clone)]
pub struct AdminChannels {
    /// Accounts and roles.
    pub user: ClientChannel,
    /// Products.
    pub product: ClientChannel,
    /// Orders and coupons.
    pub order: ClientChannel,
    /// Payments.
    pub payment: ClientChannel,
    /// Shipments.
    pub process: ClientChannel,
}

impl AdminGrpc {
    /// The handler over the user, product, order, payment and process service channels.
    pub fn new(channels: AdminChannels) -> Self {
        let AdminChannels {
            user,
            product,
            order,
            payment,
            process,
        } = channels;
        Self {
            users: UserServiceClient::new(user),
            products: ProductServiceClient::new(product),
            orders: OrderServiceClient::new(order.clone()),
            coupons: CouponServiceClient::new(order),
            payments: PaymentServiceClient::new(payment),
            shipments: ShipmentServiceClient::new(process),
        }
    }
}

fn admin<T>(request: &Request<T>) -> Result<(), Status> {
    principal::require_role(request, Role::Admin).map(drop)
}

/// `target_user_id` of a request that must name an account: required and a UUID, checked here
/// so the refusal names the public field (the services call it `user_id`).
fn target_user(target_user_id: &str) -> Result<(), Status> {
    if target_user_id.is_empty() {
        return Err(missing_field("target_user_id"));
    }
    optional_target_user(target_user_id)
}

/// An optional `target_user_id` filter: empty, or a UUID (checked here for the same reason).
fn optional_target_user(target_user_id: &str) -> Result<(), Status> {
    if target_user_id.is_empty() {
        return Ok(());
    }
    uuid::Uuid::parse_str(target_user_id)
        .map(drop)
        .map_err(|_| {
            mercato_platform::error::invalid_argument(
                "VALIDATION_FAILED",
                "target_user_id must be a uuid",
                [mercato_platform::error::field_violation(
                    "target_user_id",
                    "must be a uuid",
                )],
            )
        })
}

fn user_of(user: Option<user::User>, what: &str) -> Result<bff::Account, Status> {
    user.map(account).ok_or_else(|| broken_contract(what))
}

/// A shipment as the admin console shows it: the buyer, the address, the lines, the tracking
/// page and the withdrawal time stay in the process service.
fn public_shipment(shipment: process::Shipment) -> bff::Shipment {
    let process::Shipment {
        shipment_id,
        order_id,
        user_id: _,
        status,
        carrier,
        tracking_number,
        tracking_url: _,
        shipping_address: _,
        lines: _,
        create_time,
        ship_time,
        deliver_time,
        cancel_time: _,
    } = shipment;
    bff::Shipment {
        shipment_id,
        order_id,
        status,
        carrier,
        tracking_number,
        create_time,
        ship_time,
        deliver_time,
    }
}

#[tonic::async_trait]
impl bff::admin_service_server::AdminService for AdminGrpc {
    async fn list_users(
        &self,
        request: Request<bff::ListUsersRequest>,
    ) -> Result<Response<bff::ListUsersResponse>, Status> {
        admin(&request)?;
        let bff::ListUsersRequest {
            page_size,
            page_token,
            query,
            role,
            show_deleted,
        } = request.into_inner();
        let response = self
            .users
            .clone()
            .list_users(user::ListUsersRequest {
                page_size,
                page_token,
                query,
                role,
                show_deleted,
            })
            .await
            .map_err(downstream)?
            .into_inner();
        Ok(Response::new(bff::ListUsersResponse {
            accounts: response.users.into_iter().map(account).collect(),
            next_page_token: response.next_page_token,
        }))
    }

    async fn get_user(
        &self,
        request: Request<bff::GetUserRequest>,
    ) -> Result<Response<bff::GetUserResponse>, Status> {
        admin(&request)?;
        let bff::GetUserRequest { target_user_id } = request.into_inner();
        let response = self
            .users
            .clone()
            .get_user(user::GetUserRequest {
                user_id: target_user_id,
                show_deleted: true,
            })
            .await
            .map_err(downstream)?
            .into_inner();
        Ok(Response::new(bff::GetUserResponse {
            account: Some(user_of(response.user, "GetUserResponse.user")?),
        }))
    }

    async fn grant_role(
        &self,
        request: Request<bff::GrantRoleRequest>,
    ) -> Result<Response<bff::GrantRoleResponse>, Status> {
        admin(&request)?;
        let bff::GrantRoleRequest {
            target_user_id,
            role,
        } = request.into_inner();
        let response = self
            .users
            .clone()
            .grant_role(user::GrantRoleRequest {
                user_id: target_user_id,
                role,
            })
            .await
            .map_err(downstream)?
            .into_inner();
        Ok(Response::new(bff::GrantRoleResponse {
            account: Some(user_of(response.user, "GrantRoleResponse.user")?),
        }))
    }

    async fn revoke_role(
        &self,
        request: Request<bff::RevokeRoleRequest>,
    ) -> Result<Response<bff::RevokeRoleResponse>, Status> {
        admin(&request)?;
        let bff::RevokeRoleRequest {
            target_user_id,
            role,
        } = request.into_inner();
        let response = self
            .users
            .clone()
            .revoke_role(user::RevokeRoleRequest {
                user_id: target_user_id,
                role,
            })
            .await
            .map_err(downstream)?
            .into_inner();
        Ok(Response::new(bff::RevokeRoleResponse {
            account: Some(user_of(response.user, "RevokeRoleResponse.user")?),
        }))
    }

    async fn list_all_products(
        &self,
        request: Request<bff::ListAllProductsRequest>,
    ) -> Result<Response<bff::ListAllProductsResponse>, Status> {
        admin(&request)?;
        let bff::ListAllProductsRequest {
            page_size,
            page_token,
            target_user_id,
            statuses,
            query,
        } = request.into_inner();
        let statuses = if statuses.is_empty() {
            crate::seller::every_status()
        } else {
            statuses
        };
        let response = self
            .products
            .clone()
            .list_products(product::ListProductsRequest {
                page_size,
                page_token,
                query,
                seller_id: target_user_id,
                statuses,
                order_by: product::ProductSort::Newest.into(),
                ..product::ListProductsRequest::default()
            })
            .await
            .map_err(downstream)?
            .into_inner();
        Ok(Response::new(bff::ListAllProductsResponse {
            products: response.products.into_iter().map(public_product).collect(),
            next_page_token: response.next_page_token,
        }))
    }

    async fn set_product_featured(
        &self,
        request: Request<bff::SetProductFeaturedRequest>,
    ) -> Result<Response<bff::SetProductFeaturedResponse>, Status> {
        admin(&request)?;
        let bff::SetProductFeaturedRequest {
            product_id,
            featured,
        } = request.into_inner();
        let mut change = product_from_input(product_id, bff::ProductInput::default());
        change.featured = featured;
        let updated = self
            .products
            .clone()
            .update_product(product::UpdateProductRequest {
                product: Some(change),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["featured".to_owned()],
                }),
                expected_version: 0,
            })
            .await
            .map_err(downstream)?
            .into_inner()
            .product
            .ok_or_else(|| broken_contract("UpdateProductResponse.product"))?;
        Ok(Response::new(bff::SetProductFeaturedResponse {
            product: Some(public_product(updated)),
        }))
    }

    async fn search_orders(
        &self,
        request: Request<bff::SearchOrdersRequest>,
    ) -> Result<Response<bff::SearchOrdersResponse>, Status> {
        admin(&request)?;
        let bff::SearchOrdersRequest {
            page_size,
            page_token,
            target_user_id,
            statuses,
            create_time_from,
            create_time_to,
        } = request.into_inner();
        let order::SearchOrdersResponse {
            orders,
            next_page_token,
        } = self
            .orders
            .clone()
            .search_orders(order::SearchOrdersRequest {
                page_size,
                page_token,
                user_id: target_user_id,
                statuses,
                create_time_from,
                create_time_to,
            })
            .await
            .map_err(downstream)?
            .into_inner();
        Ok(Response::new(bff::SearchOrdersResponse {
            orders: orders
                .into_iter()
                .map(|found| public_order(found, View::Admin))
                .collect(),
            next_page_token,
        }))
    }

    async fn lookup_order(
        &self,
        request: Request<bff::LookupOrderRequest>,
    ) -> Result<Response<bff::LookupOrderResponse>, Status> {
        admin(&request)?;
        let bff::LookupOrderRequest { order_id } = request.into_inner();
        let order::LookupOrderResponse { order } = self
            .orders
            .clone()
            .lookup_order(order::LookupOrderRequest { order_id })
            .await
            .map_err(downstream)?
            .into_inner();
        Ok(Response::new(bff::LookupOrderResponse {
            order: Some(order_of(order, View::Admin, "LookupOrderResponse.order")?),
        }))
    }

    async fn cancel_any_order(
        &self,
        request: Request<bff::CancelAnyOrderRequest>,
    ) -> Result<Response<bff::CancelAnyOrderResponse>, Status> {
        admin(&request)?;
        let bff::CancelAnyOrderRequest { order_id } = request.into_inner();
        // The admin's principal is forwarded as it is: the order service lets an admin cancel
        // any order and records the reason as ADMIN_REQUESTED.
        let order::CancelOrderResponse { order } = self
            .orders
            .clone()
            .cancel_order(order::CancelOrderRequest { order_id })
            .await
            .map_err(downstream)?
            .into_inner();
        Ok(Response::new(bff::CancelAnyOrderResponse {
            order: Some(order_of(order, View::Admin, "CancelOrderResponse.order")?),
        }))
    }

    async fn search_payments(
        &self,
        request: Request<bff::SearchPaymentsRequest>,
    ) -> Result<Response<bff::SearchPaymentsResponse>, Status> {
        admin(&request)?;
        let bff::SearchPaymentsRequest {
            page_size,
            page_token,
            target_user_id,
            order_id,
            statuses,
        } = request.into_inner();
        optional_target_user(&target_user_id)?;
        let payment::SearchPaymentsResponse {
            payments,
            next_page_token,
        } = self
            .payments
            .clone()
            .search_payments(payment::SearchPaymentsRequest {
                page_size,
                page_token,
                user_id: target_user_id,
                order_id,
                statuses,
                method: 0,
            })
            .await
            .map_err(downstream)?
            .into_inner();
        Ok(Response::new(bff::SearchPaymentsResponse {
            payments: payments
                .into_iter()
                .map(|found| public_payment(found, View::Admin, ""))
                .collect(),
            next_page_token,
        }))
    }

    async fn refund_payment(
        &self,
        request: Request<bff::RefundPaymentRequest>,
    ) -> Result<Response<bff::RefundPaymentResponse>, Status> {
        admin(&request)?;
        let bff::RefundPaymentRequest {
            payment_id,
            amount,
            reason,
            idempotency_key,
        } = request.into_inner();
        // The admin's principal is forwarded as it is: the payment service checks the role
        // again and scopes the idempotency key to this admin.
        let payment::RefundPaymentResponse { refund: _, payment } = self
            .payments
            .clone()
            .refund_payment(payment::RefundPaymentRequest {
                payment_id,
                amount,
                reason,
                idempotency_key,
            })
            .await
            .map_err(downstream)?
            .into_inner();
        Ok(Response::new(bff::RefundPaymentResponse {
            payment: Some(payment_of(
                payment,
                View::Admin,
                "RefundPaymentResponse.payment",
            )?),
        }))
    }

    async fn create_coupon(
        &self,
        request: Request<bff::CreateCouponRequest>,
    ) -> Result<Response<bff::CreateCouponResponse>, Status> {
        admin(&request)?;
        let bff::CreateCouponRequest {
            coupon,
            idempotency_key,
        } = request.into_inner();
        let order::CreateCouponResponse { coupon } = self
            .coupons
            .clone()
            .create_coupon(order::CreateCouponRequest {
                coupon: coupon.map(internal_coupon),
                idempotency_key,
            })
            .await
            .map_err(downstream)?
            .into_inner();
        Ok(Response::new(bff::CreateCouponResponse {
            coupon: Some(
                coupon
                    .map(public_coupon)
                    .ok_or_else(|| broken_contract("CreateCouponResponse.coupon"))?,
            ),
        }))
    }

    async fn list_coupons(
        &self,
        request: Request<bff::ListCouponsRequest>,
    ) -> Result<Response<bff::ListCouponsResponse>, Status> {
        admin(&request)?;
        let bff::ListCouponsRequest {
            page_size,
            page_token,
        } = request.into_inner();
        let order::ListCouponsResponse {
            coupons,
            next_page_token,
        } = self
            .coupons
            .clone()
            .list_coupons(order::ListCouponsRequest {
                page_size,
                page_token,
            })
            .await
            .map_err(downstream)?
            .into_inner();
        Ok(Response::new(bff::ListCouponsResponse {
            coupons: coupons.into_iter().map(public_coupon).collect(),
            next_page_token,
        }))
    }

    async fn create_campaign(
        &self,
        request: Request<bff::CreateCampaignRequest>,
    ) -> Result<Response<bff::CreateCampaignResponse>, Status> {
        admin(&request)?;
        let bff::CreateCampaignRequest {
            campaign,
            idempotency_key,
        } = request.into_inner();
        let order::CreateCampaignResponse { campaign } = self
            .coupons
            .clone()
            .create_campaign(order::CreateCampaignRequest {
                campaign: campaign.map(internal_campaign),
                idempotency_key,
            })
            .await
            .map_err(downstream)?
            .into_inner();
        Ok(Response::new(bff::CreateCampaignResponse {
            campaign: Some(campaign_of(campaign, "CreateCampaignResponse.campaign")?),
        }))
    }

    async fn issue_coupon(
        &self,
        request: Request<bff::IssueCouponRequest>,
    ) -> Result<Response<bff::IssueCouponResponse>, Status> {
        admin(&request)?;
        let bff::IssueCouponRequest {
            coupon_id,
            target_user_id,
            idempotency_key,
        } = request.into_inner();
        target_user(&target_user_id)?;
        // The order service keeps no accounts: the receiving one must exist (a deleted account
        // is NOT_FOUND too) before a coupon is issued to it.
        self.users
            .clone()
            .get_user(user::GetUserRequest {
                user_id: target_user_id.clone(),
                show_deleted: false,
            })
            .await
            .map_err(downstream)?;
        let order::IssueCouponResponse { user_coupon } = self
            .coupons
            .clone()
            .issue_coupon(order::IssueCouponRequest {
                coupon_id,
                user_id: target_user_id,
                idempotency_key,
            })
            .await
            .map_err(downstream)?
            .into_inner();
        Ok(Response::new(bff::IssueCouponResponse {
            user_coupon: Some(user_coupon_of(
                user_coupon,
                "IssueCouponResponse.user_coupon",
            )?),
        }))
    }

    async fn list_shipments(
        &self,
        request: Request<bff::ListShipmentsRequest>,
    ) -> Result<Response<bff::ListShipmentsResponse>, Status> {
        admin(&request)?;
        let bff::ListShipmentsRequest {
            page_size,
            page_token,
            order_id,
            statuses,
        } = request.into_inner();
        let process::ListShipmentsResponse {
            shipments,
            next_page_token,
        } = self
            .shipments
            .clone()
            .list_shipments(process::ListShipmentsRequest {
                page_size,
                page_token,
                order_id,
                statuses,
            })
            .await
            .map_err(downstream)?
            .into_inner();
        Ok(Response::new(bff::ListShipmentsResponse {
            shipments: shipments.into_iter().map(public_shipment).collect(),
            next_page_token,
        }))
    }

    async fn mark_shipment_shipped(
        &self,
        request: Request<bff::MarkShipmentShippedRequest>,
    ) -> Result<Response<bff::MarkShipmentShippedResponse>, Status> {
        admin(&request)?;
        let bff::MarkShipmentShippedRequest {
            shipment_id,
            carrier,
            tracking_number,
            tracking_url,
        } = request.into_inner();
        // The admin's principal is forwarded as it is: the process service checks the role
        // again, commits the stock if the worker has not yet, and moves the order to SHIPPED.
        // The handover time is the process service's now (the public API does not take one).
        let process::MarkShipmentShippedResponse { shipment } = self
            .shipments
            .clone()
            .mark_shipment_shipped(process::MarkShipmentShippedRequest {
                shipment_id,
                carrier,
                tracking_number,
                tracking_url,
                ship_time: None,
            })
            .await
            .map_err(downstream)?
            .into_inner();
        Ok(Response::new(bff::MarkShipmentShippedResponse {
            shipment: Some(
                shipment
                    .map(public_shipment)
                    .ok_or_else(|| broken_contract("MarkShipmentShippedResponse.shipment"))?,
            ),
        }))
    }
}
