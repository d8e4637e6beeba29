//! Who the client says it is: a user name and password, or an API key, sent as the
//! `authorization` metadata of every request (over TLS, so it is not readable on the way). A
//! client certificate is the other way, through [`crate::ClientConfig::tls`].

use tonic::metadata::{AsciiMetadataValue, MetadataValue};

/// A client's credentials. Their `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// A user's password (the user was created with `eddy user create`).
    Password { user: String, password: String },
    /// A static API key (a bearer token).
    Token(String),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Password { user, .. } => write!(f, "Password {{ user: {user:?}, password: <hidden> }}"),
            Credentials::Token(_) => f.write_str("Token(<hidden>)"),
        }
    }
}

impl Credentials {
    /// The `authorization` value: `Basic base64(user:password)` or `Bearer <token>`.
    pub fn authorization(&self) -> String {
        use base64::Engine as _;
        match self {
            Credentials::Password { user, password } => {
                format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
            }
            Credentials::Token(token) => format!("Bearer {token}"),
        }
    }
}

tokio::task_local! {
    /// Credentials that replace the client's own for the requests of one task (see
    /// [`with_authorization`]).
    static SCOPED: Option<AsciiMetadataValue>;
}

/// Runs `future` with its requests carrying `authorization` (an `Authorization` header value
/// as it came) instead of the client's own credentials: a gateway passing its caller's
/// credentials through to the brokers. `None` sends none.
pub async fn with_authorization<F: std::future::Future>(authorization: Option<&str>, future: F) -> F::Output {
    let value = authorization.and_then(|a| MetadataValue::try_from(a).ok());
    SCOPED.scope(value, future).await
}

/// The `authorization` the current task runs with ([`with_authorization`]), if any.
pub fn scoped_authorization() -> Option<String> {
    SCOPED.try_with(|v| v.as_ref().and_then(|v| v.to_str().ok()).map(str::to_string)).ok().flatten()
}

/// Adds the credentials to every request: the scoped ones of the current task when set, else
/// the client's own.
#[derive(Clone, Default)]
pub struct Authorize(pub(crate) Option<AsciiMetadataValue>);

impl Authorize {
    pub(crate) fn new(credentials: Option<&Credentials>) -> Authorize {
        Authorize(credentials.and_then(|c| MetadataValue::try_from(c.authorization()).ok()))
    }

    /// The credentials the current task runs with ([`with_authorization`]), else these.
    pub(crate) fn scoped(&self) -> Authorize {
        Authorize(SCOPED.try_with(Clone::clone).unwrap_or_else(|_| self.0.clone()))
    }
}

impl tonic::service::Interceptor for Authorize {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let value = SCOPED.try_with(Clone::clone).unwrap_or_else(|_| self.0.clone());
        if let Some(value) = value {
            request.metadata_mut().insert("authorization", value);
        }
        Ok(request)
    }
}

/// The channel every stub uses: the connection, with the credentials added.
pub type Transport = tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Authorize>;
