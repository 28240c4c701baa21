//! The error-code table maps every code to gRPC and HTTP, rich details survive the wire format,
//! and server-side failures are masked.

use std::time::Duration;

use http::StatusCode;
use mercato_platform::error::{
    self, CORRELATION_ID_KEY, DOMAIN, ErrorCode, ServiceError, field_violation, into_status,
    precondition_violation,
};
use tonic::Code;
use tonic_types::{ErrorDetails, StatusExt as _};

#[test]
fn every_error_code_maps_to_the_expected_grpc_and_http_status() {
    let expected = [
        (ErrorCode::Cancelled, Code::Cancelled, 499),
        (ErrorCode::InvalidArgument, Code::InvalidArgument, 400),
        (ErrorCode::DeadlineExceeded, Code::DeadlineExceeded, 504),
        (ErrorCode::NotFound, Code::NotFound, 404),
        (ErrorCode::AlreadyExists, Code::AlreadyExists, 409),
        (ErrorCode::PermissionDenied, Code::PermissionDenied, 403),
        (ErrorCode::ResourceExhausted, Code::ResourceExhausted, 429),
        (ErrorCode::FailedPrecondition, Code::FailedPrecondition, 400),
        (ErrorCode::Aborted, Code::Aborted, 409),
        (ErrorCode::Unimplemented, Code::Unimplemented, 501),
        (ErrorCode::Internal, Code::Internal, 500),
        (ErrorCode::Unavailable, Code::Unavailable, 503),
        (ErrorCode::Unauthenticated, Code::Unauthenticated, 401),
    ];
    assert_eq!(
        expected.len(),
        ErrorCode::ALL.len(),
        "the table covers every code"
    );
    for (code, grpc, http) in expected {
        assert!(ErrorCode::ALL.contains(&code));
        assert_eq!(code.grpc(), grpc, "{code:?} → grpc");
        assert_eq!(code.http().as_u16(), http, "{code:?} → http");
    }
}

#[test]
fn peer_codes_mercato_never_sends_still_map_to_http() {
    assert_eq!(error::http_status(Code::Ok), StatusCode::OK);
    assert_eq!(
        error::http_status(Code::Unknown),
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(
        error::http_status(Code::OutOfRange),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        error::http_status(Code::DataLoss),
        StatusCode::INTERNAL_SERVER_ERROR
    );
}

/// A service error enum as a service would write it.
#[derive(Debug, thiserror::Error)]
enum CheckoutError {
    #[error("quantity must be between 1 and 99")]
    BadQuantity,
    #[error("order {0} is already paid")]
    AlreadyPaid(String),
    #[error("failed to write the order")]
    Database(#[source] std::io::Error),
    #[error("payment provider unreachable")]
    Provider(#[source] std::io::Error),
}

impl ServiceError for CheckoutError {
    fn code(&self) -> ErrorCode {
        match self {
            Self::BadQuantity => ErrorCode::InvalidArgument,
            Self::AlreadyPaid(_) => ErrorCode::FailedPrecondition,
            Self::Database(_) => ErrorCode::Internal,
            Self::Provider(_) => ErrorCode::Unavailable,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            Self::BadQuantity => "CART_BAD_QUANTITY",
            Self::AlreadyPaid(_) => "ORDER_ALREADY_PAID",
            Self::Database(_) => "INTERNAL",
            Self::Provider(_) => "PAYMENT_PROVIDER_UNAVAILABLE",
        }
    }

    fn details(&self) -> ErrorDetails {
        match self {
            Self::BadQuantity => {
                ErrorDetails::with_bad_request_violation("lines[0].quantity", "must be 1..=99")
            }
            Self::AlreadyPaid(id) => ErrorDetails::with_precondition_failure_violation(
                "STATE",
                format!("orders/{id}"),
                "the order is already paid",
            ),
            Self::Database(_) | Self::Provider(_) => ErrorDetails::new(),
        }
    }
}

/// Sends `status` through its wire form (headers), as a client receives it.
fn over_the_wire(status: tonic::Status) -> tonic::Status {
    let response = status.into_http::<tonic::body::Body>();
    tonic::Status::from_header_map(response.headers()).expect("grpc-status header present")
}

#[test]
fn field_violations_name_the_field_and_decode_on_the_client() {
    let status = over_the_wire(into_status(CheckoutError::BadQuantity));
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(status.message(), "quantity must be between 1 and 99");
    let details = status.check_error_details().expect("details decode");
    let violations = &details.bad_request().expect("bad request").field_violations;
    assert_eq!(violations.len(), 1);
    assert_eq!(violations[0].field, "lines[0].quantity");
    let info = details.error_info().expect("error info");
    assert_eq!(info.reason, "CART_BAD_QUANTITY");
    assert_eq!(info.domain, DOMAIN);
}

#[test]
fn precondition_failures_keep_their_subject() {
    let status = over_the_wire(into_status(CheckoutError::AlreadyPaid("o-1".into())));
    assert_eq!(status.code(), Code::FailedPrecondition);
    let details = status.check_error_details().expect("details decode");
    let violation = &details
        .precondition_failure()
        .expect("precondition")
        .violations[0];
    assert_eq!(violation.subject, "orders/o-1");
    assert_eq!(
        details.error_info().map(|i| i.reason.as_str()),
        Some("ORDER_ALREADY_PAID")
    );
}

#[test]
fn internal_errors_are_masked_with_a_correlation_id() {
    let err = CheckoutError::Database(std::io::Error::other("connection to 10.0.0.7 refused"));
    let status = over_the_wire(into_status(err));
    assert_eq!(status.code(), Code::Internal);
    assert!(
        status
            .message()
            .starts_with("internal error (correlation id ")
    );
    assert!(!status.message().contains("10.0.0.7"));
    assert!(!status.message().contains("failed to write"));
    let details = status.check_error_details().expect("details decode");
    let info = details.error_info().expect("error info");
    assert_eq!(info.reason, "INTERNAL");
    let correlation_id = info
        .metadata
        .get(CORRELATION_ID_KEY)
        .expect("correlation id");
    assert!(status.message().contains(correlation_id.as_str()));
    assert_eq!(
        details.request_info().map(|r| r.request_id.as_str()),
        Some(correlation_id.as_str())
    );
}

#[test]
fn unavailable_dependencies_are_masked_too() {
    let err = CheckoutError::Provider(std::io::Error::other("api.stripe.example: tls handshake"));
    let status = over_the_wire(into_status(err));
    assert_eq!(status.code(), Code::Unavailable);
    assert!(
        status
            .message()
            .starts_with("service unavailable, retry later")
    );
    assert!(!status.message().contains("stripe"));
}

#[test]
fn rate_limits_carry_quota_failure_and_retry_info() {
    let status = over_the_wire(error::rate_limited(
        "RATE_LIMITED",
        "user:42",
        "100 requests per minute",
        Duration::from_secs(7),
    ));
    assert_eq!(status.code(), Code::ResourceExhausted);
    let details = status.check_error_details().expect("details decode");
    assert_eq!(
        details.quota_failure().expect("quota failure").violations[0].subject,
        "user:42"
    );
    assert_eq!(
        details.retry_info().and_then(|r| r.retry_delay),
        Some(Duration::from_secs(7))
    );
}

#[test]
fn not_found_names_the_resource() {
    let status = over_the_wire(error::not_found("PRODUCT_NOT_FOUND", "product", "p-9"));
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(status.message(), "product p-9 not found");
    let details = status.check_error_details().expect("details decode");
    let resource = details.resource_info().expect("resource info");
    assert_eq!(
        (
            resource.resource_type.as_str(),
            resource.resource_name.as_str()
        ),
        ("product", "p-9")
    );
}

#[test]
fn helper_builders_set_the_error_info_reason() {
    let status = over_the_wire(error::invalid_argument(
        "ADDRESS_INVALID",
        "invalid shipping address",
        [field_violation(
            "shipping_address.postal_code",
            "expected ddd-dddd",
        )],
    ));
    let details = status.check_error_details().expect("details decode");
    assert_eq!(
        details.error_info().map(|i| i.reason.as_str()),
        Some("ADDRESS_INVALID")
    );
    let status = over_the_wire(error::failed_precondition(
        "STOCK_TOO_LOW",
        "not enough stock",
        [precondition_violation("STOCK", "skus/s-1", "2 left")],
    ));
    assert_eq!(status.code(), Code::FailedPrecondition);
}
