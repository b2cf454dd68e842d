//! Errors as the API reports them: a status, a stable code and a sentence.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use cnnspot_core::image::ImageError;
use serde::Serialize;

/// An error of a request, or of one file in it.
#[derive(Debug, Clone, Serialize)]
pub struct ApiError {
    /// The HTTP status this error gets when it is the answer to the request.
    pub status: u16,
    /// Machine-readable reason (`not_an_image`, `too_many_pixels`, ...).
    pub code: &'static str,
    /// One sentence for people.
    pub message: String,
}

impl ApiError {
    /// An error with this status, machine-readable code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status: status.as_u16(),
            code,
            message: message.into(),
        }
    }

    /// The HTTP status.
    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The response for an image that cannot be scored.
    pub fn from_image(e: &ImageError) -> Self {
        let (status, code) = match e {
            ImageError::Empty => (StatusCode::UNPROCESSABLE_ENTITY, "empty"),
            ImageError::NotAnImage => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "not_an_image"),
            ImageError::Unsupported(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_format")
            }
            ImageError::Corrupt { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "corrupt_image"),
            ImageError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "too_many_pixels"),
            ImageError::MemoryLimit(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_much_memory"),
            ImageError::TooSmall { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "too_small"),
            ImageError::Io(_) => (StatusCode::INTERNAL_SERVER_ERROR, "io"),
            _ => (StatusCode::UNPROCESSABLE_ENTITY, "bad_image"),
        };
        ApiError::new(status, code, e.to_string())
    }

    /// A 503 (the server is busy or shutting down).
    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a ApiError,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let body = serde_json::to_vec(&ErrorBody { error: &self }).unwrap_or_default();
        let mut resp = (status, body).into_response();
        let headers = resp.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        match status {
            StatusCode::UNAUTHORIZED => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"cnnspot\""),
                );
            }
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        resp
    }
}

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Refused to listen without a token where others could connect.
    #[error(
        "refusing to listen on {0} without a token: it is not a loopback address, so anyone \
         who can reach it could use the model; pass --token-file FILE, or \
         --allow-unauthenticated if that is intended"
    )]
    Unauthenticated(std::net::SocketAddr),
    /// Binding, accepting or the model thread failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        #[source]
        /// The operating system's error.
        source: std::io::Error,
    },
}
