//! The adapter's error: input refused before sending, Stripe's own refusal, or a transport fault.

/// Everything a call can fail with. Stripe's error objects become [`ApiError`]; nothing here
/// carries a Stripe type.
#[derive(Debug, thiserror::Error)]
pub enum StripeError {
    /// The request was refused before anything was sent.
    #[error("invalid {field}: {reason}")]
    InvalidArgument { field: &'static str, reason: String },
    /// Stripe answered with an error object (4xx/5xx).
    #[error("stripe refused the request: {0}")]
    Api(Box<ApiError>),
    /// Stripe answered 2xx, or an error without an error object, but the body could not be read.
    /// With an idempotency key a retry is safe and returns the same result.
    #[error("stripe's answer could not be read: {0}")]
    Decode(String),
    /// No answer: connection refused or reset, DNS, TLS.
    #[error("stripe could not be reached: {0}")]
    Transport(String),
    /// No answer within the configured timeout; the request may or may not have taken effect.
    #[error("stripe did not answer in time")]
    Timeout,
    /// The client could not be built from its configuration.
    #[error("invalid stripe configuration: {0}")]
    Config(String),
}

impl StripeError {
    /// Worth retrying with the same idempotency key: no answer, a conflict with a concurrent
    /// request, rate limiting, or a server-side failure.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Transport(_) | Self::Timeout => true,
            Self::Api(api) => matches!(api.status, 409 | 429 | 500..=599),
            Self::InvalidArgument { .. } | Self::Decode(_) | Self::Config(_) => false,
        }
    }

    /// The object does not exist (or the endpoint does not, as with localstripe's missing ones).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Api(api) if api.status == 404)
    }

    /// Stripe's error object, when Stripe answered with one.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            Self::Api(api) => Some(api),
            Self::InvalidArgument { .. }
            | Self::Decode(_)
            | Self::Transport(_)
            | Self::Timeout
            | Self::Config(_) => None,
        }
    }

    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field,
            reason: reason.into(),
        }
    }
}

/// Stripe's error object (docs.stripe.com/api/errors) with the HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub kind: ApiErrorKind,
    /// e.g. `card_declined`, `resource_missing`, `amount_too_small`.
    pub code: Option<String>,
    /// The issuer's reason for a card decline.
    pub decline_code: Option<String>,
    pub message: Option<String>,
    /// The request parameter at fault, for invalid requests.
    pub param: Option<String>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "status {}, {}", self.status, self.kind.as_str())?;
        if let Some(code) = &self.code {
            write!(f, " {code}")?;
        }
        if let Some(param) = &self.param {
            write!(f, " (param {param})")?;
        }
        if let Some(message) = &self.message {
            write!(f, ": {message}")?;
        }
        Ok(())
    }
}

/// Stripe's error `type`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ApiErrorKind {
    /// The card was declined or cannot be charged.
    Card,
    /// Bad parameters, unknown object, wrong state.
    InvalidRequest,
    /// An idempotency key reused with different parameters.
    Idempotency,
    /// A problem on Stripe's side.
    Api,
    Other(String),
}

impl ApiErrorKind {
    pub fn as_str(&self) -> &str {
        match self {
            Self::Card => "card_error",
            Self::InvalidRequest => "invalid_request_error",
            Self::Idempotency => "idempotency_error",
            Self::Api => "api_error",
            Self::Other(other) => other,
        }
    }
}
