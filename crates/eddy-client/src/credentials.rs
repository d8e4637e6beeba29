//! Who the client says it is: a user name and password, or an API key, sent as the
//! `authorization` metadata of every request (over TLS, so it is not readable on the way). A
//! client certificate is the other way, through [`crate::ClientConfig::tls`].

use futures::StreamExt as _;
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

pub use eddy_auth::ON_BEHALF_OF;

/// Who the requests of one task speak for, in place of the client's own credentials.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scoped {
    /// An `authorization` value, passed on as it came.
    authorization: Option<AsciiMetadataValue>,
    /// A principal (`User:alice`) the client acts for ([`ON_BEHALF_OF`]).
    on_behalf_of: Option<AsciiMetadataValue>,
}

impl Scoped {
    /// Requests carrying `authorization` (an `Authorization` header value as it came); `None`
    /// carries none.
    pub fn authorization(authorization: Option<&str>) -> Scoped {
        Scoped { authorization: authorization.and_then(|a| MetadataValue::try_from(a).ok()), on_behalf_of: None }
    }

    /// Requests acting for `principal` (as `User:alice`), which brokers accept only from a
    /// client presenting a broker's certificate ([`ON_BEHALF_OF`]).
    pub fn principal(principal: &str) -> Scoped {
        Scoped { authorization: None, on_behalf_of: MetadataValue::try_from(principal).ok() }
    }

    /// A text naming these credentials, to tell callers apart: the `authorization` value, or
    /// the principal acted for. Empty for none.
    pub fn identity(&self) -> String {
        match (&self.authorization, &self.on_behalf_of) {
            (Some(value), _) => value.to_str().unwrap_or_default().to_string(),
            (None, Some(principal)) => format!("{ON_BEHALF_OF}: {}", principal.to_str().unwrap_or_default()),
            (None, None) => String::new(),
        }
    }
}

tokio::task_local! {
    /// Credentials that replace the client's own for the requests of one task (see [`scope`]).
    static SCOPED: Scoped;
}

/// Runs `future` with its requests carrying `scoped` instead of the client's own credentials:
/// a gateway passing its caller's credentials through to the brokers.
pub async fn scope<F: std::future::Future>(scoped: Scoped, future: F) -> F::Output {
    SCOPED.scope(scoped, future).await
}

/// `stream`, polled with its requests carrying `scoped` (as [`scope`] does for a future): a
/// subscription a gateway serves its caller.
pub fn scope_stream<S: futures::Stream + Unpin>(scoped: Scoped, mut stream: S) -> impl futures::Stream<Item = S::Item> {
    futures::stream::poll_fn(move |cx| SCOPED.sync_scope(scoped.clone(), || stream.poll_next_unpin(cx)))
}

/// Runs `future` with its requests carrying `authorization` (an `Authorization` header value
/// as it came) instead of the client's own credentials. `None` sends none.
pub async fn with_authorization<F: std::future::Future>(authorization: Option<&str>, future: F) -> F::Output {
    scope(Scoped::authorization(authorization), future).await
}

/// Runs `future` with its requests acting for `principal` (as `User:alice`) instead of
/// carrying the client's own credentials: a gateway whose caller presented a client
/// certificate. Brokers accept it only from a client presenting a broker's certificate.
pub async fn with_principal<F: std::future::Future>(principal: &str, future: F) -> F::Output {
    scope(Scoped::principal(principal), future).await
}

/// The credentials the current task runs with ([`scope`], [`with_authorization`],
/// [`with_principal`]), if any.
pub fn scoped() -> Option<Scoped> {
    SCOPED.try_with(Clone::clone).ok()
}

/// Adds the credentials to every request: the scoped ones of the current task when set, else
/// the client's own.
#[derive(Clone, Default)]
pub struct Authorize(pub(crate) Scoped);

impl Authorize {
    pub(crate) fn new(credentials: Option<&Credentials>) -> Authorize {
        let authorization = credentials.and_then(|c| MetadataValue::try_from(c.authorization()).ok());
        Authorize(Scoped { authorization, on_behalf_of: None })
    }

    /// The credentials the current task runs with ([`with_authorization`]), else these.
    pub(crate) fn scoped(&self) -> Authorize {
        Authorize(scoped().unwrap_or_else(|| self.0.clone()))
    }
}

impl tonic::service::Interceptor for Authorize {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let scoped = SCOPED.try_with(Clone::clone).unwrap_or_else(|_| self.0.clone());
        if let Some(value) = scoped.authorization {
            request.metadata_mut().insert("authorization", value);
        }
        if let Some(value) = scoped.on_behalf_of {
            request.metadata_mut().insert(ON_BEHALF_OF, value);
        }
        Ok(request)
    }
}

/// The channel every stub uses: the connection, with the credentials added.
pub type Transport = tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Authorize>;
