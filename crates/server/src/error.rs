//! [`ApiError`]: every error the API returns, mapped to a status code in one place.
//!
//! The body is always `{"error": {"status": 400, "message": "...", "details": ...}}`. Client
//! errors say what was wrong with the input; server errors are logged once here and answered
//! with a generic message.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

/// An API error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// No or unknown credentials (401).
    #[error("{0}")]
    Unauthorized(String),
    /// Valid token without the needed scope (403).
    #[error("{0}")]
    Forbidden(String),
    /// Malformed input (400), with optional structured details.
    #[error("{message}")]
    BadRequest {
        /// What was wrong.
        message: String,
        /// Machine-readable details (e.g. per-line errors).
        details: Option<Value>,
    },
    /// Body too large (413).
    #[error("{0}")]
    PayloadTooLarge(String),
    /// Wrong content type (415).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The pipeline is saturated; retry after this many seconds (503).
    #[error("ingest pipeline is saturated; retry after {0} s")]
    Busy(u64),
    /// Another server-wide budget is in use (503), e.g. the decode memory budget; the message
    /// names it. Retry after `retry_after` seconds.
    #[error("{message}")]
    Overloaded {
        /// Which budget, and its value.
        message: String,
        /// Seconds the client is told to wait.
        retry_after: u64,
    },
    /// The request body did not arrive in time (408).
    #[error("{0}")]
    RequestTimeout(String),
    /// The data disk is full; nothing was stored; retry after this many seconds (507).
    #[error(
        "the server's data disk is full: nothing of this request was stored; retry after {0} s"
    )]
    InsufficientStorage(u64),
    /// Too many requests from this client (429); retry after `retry_after_secs`.
    #[error("{message}")]
    TooManyRequests {
        /// Which limit, and its value.
        message: String,
        /// Seconds after which a retry may succeed (`Retry-After`).
        retry_after_secs: u64,
    },
    /// The work ran past its time budget and was stopped (504).
    #[error("{0}")]
    Timeout(String),
    /// Not found (404).
    #[error("{0}")]
    NotFound(String),
    /// Anything else (500); the cause is logged, not returned.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    /// A 400 with just a message.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::BadRequest {
            message: message.into(),
            details: None,
        }
    }

    /// Seconds a client should wait before retrying (the 429, 503 and 507 answers).
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Self::Busy(secs) | Self::InsufficientStorage(secs) => Some(*secs),
            Self::Overloaded { retry_after, .. } => Some(*retry_after),
            Self::TooManyRequests {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            _ => None,
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Busy(_) | Self::Overloaded { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::InsufficientStorage(_) => StatusCode::INSUFFICIENT_STORAGE,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            Self::Internal(error) => {
                tracing::error!(error = format!("{error:#}"), "internal error");
                "internal error (see the server log)".to_string()
            }
            other => other.to_string(),
        };
        let details = match &self {
            Self::BadRequest { details, .. } => details.clone(),
            _ => None,
        };
        let mut body = json!({"error": {"status": status.as_u16(), "message": message}});
        if let Some(details) = details {
            body["error"]["details"] = details;
        }
        let mut response = (status, Json(body)).into_response();
        match &self {
            Self::Unauthorized(_) => {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"crowsnest\""),
                );
            }
            Self::Busy(_)
            | Self::Overloaded { .. }
            | Self::InsufficientStorage(_)
            | Self::TooManyRequests { .. } => {
                let secs = self.retry_after().unwrap_or(1);
                if let Ok(value) = HeaderValue::from_str(&secs.to_string()) {
                    response.headers_mut().insert(header::RETRY_AFTER, value);
                }
            }
            Self::RequestTimeout(_) => {
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
        response
    }
}

impl From<crate::dedup::GateError> for ApiError {
    fn from(error: crate::dedup::GateError) -> Self {
        match error {
            crate::dedup::GateError::InFlight(_) => ApiError::Busy(1),
            bad => ApiError::bad_request(bad.to_string()),
        }
    }
}
