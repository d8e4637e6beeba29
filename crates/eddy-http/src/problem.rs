//! Errors of the REST API as `application/problem+json` (RFC 9457), carrying the same reason
//! codes as the gRPC API's ErrorInfo: one table maps each reason to its HTTP status.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use eddy_client::{ClientError, Reason};
use serde::Serialize;
use utoipa::ToSchema;

/// The media type of every error answer.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An error answer (RFC 9457 problem details, with Eddy's reason code); boxed, so that the
/// results that carry it stay small.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct Problem(Box<ProblemDetails>);

impl std::ops::Deref for Problem {
    type Target = ProblemDetails;

    fn deref(&self) -> &ProblemDetails {
        &self.0
    }
}

/// The fields of a [`Problem`].
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Problem)]
pub struct ProblemDetails {
    /// `urn:eddy:reason:<REASON>`: identifies the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the kind of problem (the same for every occurrence).
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What happened this time.
    pub detail: String,
    /// The reason code, as in the gRPC API's ErrorInfo (docs/api.md lists them).
    pub reason: String,
    /// For BUSY: how long to wait before retrying (also in the Retry-After header).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
    /// For NOT_LEADER and similar answers: what the broker added (leader id and address, ...).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub metadata: std::collections::BTreeMap<String, String>,
}

impl Problem {
    /// A problem of `reason` (its status from [`status_of`]).
    pub fn new(reason: Reason, detail: impl Into<String>) -> Problem {
        Problem::with_code(reason.as_str(), status_of(reason), detail)
    }

    /// A problem whose reason is not one of the broker's (a client-side one, such as TIMEOUT).
    pub fn with_code(reason: &str, status: StatusCode, detail: impl Into<String>) -> Problem {
        Problem(Box::new(ProblemDetails {
            kind: format!("urn:eddy:reason:{reason}"),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            detail: detail.into(),
            reason: reason.to_string(),
            retry_after_ms: None,
            metadata: Default::default(),
        }))
    }

    /// Tells the client when to retry (the body's `retry_after_ms` and the Retry-After header).
    pub fn set_retry_after_ms(&mut self, ms: u64) {
        self.0.retry_after_ms = Some(ms);
    }

    /// An invalid request (400 INVALID_REQUEST).
    pub fn invalid(detail: impl Into<String>) -> Problem {
        Problem::new(Reason::InvalidRequest, detail)
    }
}

/// The HTTP status of a reason code.
pub fn status_of(reason: Reason) -> StatusCode {
    use Reason::*;
    match reason {
        UnknownTopic | UnknownPartition | GroupNotFound | UnknownBroker | UnknownMember | UnknownUser => {
            StatusCode::NOT_FOUND
        }
        Unauthenticated => StatusCode::UNAUTHORIZED,
        PermissionDenied => StatusCode::FORBIDDEN,
        TopicAlreadyExists | GroupNotEmpty | OutOfOrderSequence | ProducerFenced | UnknownProducerId
        | OffsetRegression | FencedMemberEpoch | StaleMemberEpoch | PartitionNotAssigned => StatusCode::CONFLICT,
        RecordTooLarge | BatchTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        OffsetOutOfRange => StatusCode::RANGE_NOT_SATISFIABLE,
        SchemaValidationFailed => StatusCode::UNPROCESSABLE_ENTITY,
        InvalidRequest
        | InvalidTopicName
        | InvalidPartitions
        | InvalidReplicationFactor
        | InvalidConfig
        | InvalidGroupId
        | InvalidArgument => StatusCode::BAD_REQUEST,
        InternalTopic => StatusCode::FORBIDDEN,
        Busy => StatusCode::TOO_MANY_REQUESTS,
        Timeout | OutcomeUnknown => StatusCode::GATEWAY_TIMEOUT,
        NotLeader
        | LeaderNotAvailable
        | MetadataNotReady
        | NotEnoughReplicas
        | NotCoordinator
        | CoordinatorLoading
        | NotController
        | ControllerUnavailable
        | ShuttingDown
        | Unreachable => StatusCode::SERVICE_UNAVAILABLE,
        StorageError | Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<ClientError> for Problem {
    fn from(error: ClientError) -> Problem {
        let detail = error.to_string();
        let mut problem = match (&error, error.code()) {
            (_, Some(reason)) => Problem::new(reason, detail),
            (ClientError::Timeout(_), None) => Problem::with_code("TIMEOUT", StatusCode::GATEWAY_TIMEOUT, detail),
            (ClientError::Invalid(_), None) => Problem::new(Reason::InvalidArgument, detail),
            (ClientError::Unreachable(_), None) => {
                Problem::with_code("UNREACHABLE", StatusCode::SERVICE_UNAVAILABLE, detail)
            }
            (_, None) => Problem::with_code(error.reason(), StatusCode::BAD_GATEWAY, detail),
        };
        if let ClientError::Broker { metadata, .. } = &error {
            let problem = &mut problem.0;
            problem.metadata = metadata.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            problem.retry_after_ms = metadata.get("retry_after_ms").and_then(|v| v.parse().ok());
        }
        problem
    }
}

impl From<JsonRejection> for Problem {
    fn from(rejection: JsonRejection) -> Problem {
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => {
                Problem::with_code("REQUEST_TOO_LARGE", StatusCode::PAYLOAD_TOO_LARGE, rejection.body_text())
            }
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Problem::with_code(
                "INVALID_REQUEST",
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "the body must be JSON (Content-Type: application/json)",
            ),
            _ => Problem::invalid(rejection.body_text()),
        }
    }
}

impl From<QueryRejection> for Problem {
    fn from(rejection: QueryRejection) -> Problem {
        Problem::invalid(rejection.body_text())
    }
}

impl From<PathRejection> for Problem {
    fn from(rejection: PathRejection) -> Problem {
        Problem::invalid(rejection.body_text())
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let retry_after = self.retry_after_ms.map(|ms| ms.div_ceil(1000).max(1));
        let body = serde_json::to_string(&self).expect("a problem serializes");
        let mut response = (status, [(header::CONTENT_TYPE, PROBLEM_JSON)], body).into_response();
        if let Some(seconds) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_a_status_and_the_documented_ones_hold() {
        for reason in Reason::ALL {
            let status = status_of(reason);
            assert!(status.is_client_error() || status.is_server_error(), "{reason:?} maps to {status}");
        }
        assert_eq!(status_of(Reason::UnknownTopic), StatusCode::NOT_FOUND);
        assert_eq!(status_of(Reason::TopicAlreadyExists), StatusCode::CONFLICT);
        assert_eq!(status_of(Reason::BatchTooLarge), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(status_of(Reason::NotEnoughReplicas), StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn a_busy_answer_says_when_to_retry() {
        let mut problem = Problem::new(Reason::Busy, "too many long polls");
        problem.set_retry_after_ms(100);
        let response = problem.into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
    }
}
