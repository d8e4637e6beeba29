//! Who a client request comes from (authentication) and whether it may do what it asks
//! (authorization), with the users and ACLs the controller replicates and the broker's
//! `auth` configuration.
//!
//! A request authenticates with one of:
//! - `authorization: Basic base64(user:password)`: a user's password, checked against its
//!   SCRAM-SHA-256 credential (the check costs thousands of HMACs, so a success is remembered
//!   until the credential changes);
//! - `authorization: Bearer <token>`: a static API key from the configuration;
//! - a client certificate verified by the TLS listener: the user its common name names.
//!
//! Every denial and every security change is logged under the `eddy::audit` target.

use std::collections::HashMap;
use std::sync::Mutex;

use base64::Engine as _;
use eddy_auth::{Operation, Principal, Resource, ResourceType};
use eddy_controller::SecurityState;
use sha2::Digest as _;

use crate::config::BrokerConfig;
use crate::error::BrokerError;

/// Passwords remembered as checked, at most; past it the memory starts over.
const VERIFIED_PASSWORDS_MAX: usize = 4_096;

/// A user and the SHA-256 of a password it gave.
type PasswordDigest = (String, [u8; 32]);
/// The stored key of the credential a password was checked against: a success stands only
/// while the user's credential is the same.
type StoredKey = [u8; 32];

/// The principal of requests while authentication is off.
pub const ANONYMOUS: &str = "User:ANONYMOUS";

/// How a caller proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// Authentication is off.
    None,
    Password,
    Token,
    Certificate,
}

impl Mechanism {
    pub fn as_str(self) -> &'static str {
        match self {
            Mechanism::None => "none",
            Mechanism::Password => "password",
            Mechanism::Token => "token",
            Mechanism::Certificate => "certificate",
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    pub mechanism: Mechanism,
    /// May do everything: a configured superuser, or anyone while authentication is off.
    pub superuser: bool,
}

/// The broker's authenticator and authorizer.
pub struct Auth {
    on: bool,
    superusers: Vec<Principal>,
    api_keys: Vec<(eddy_auth::ApiKey, Principal)>,
    /// Passwords checked and found right.
    verified: Mutex<HashMap<PasswordDigest, StoredKey>>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth").field("on", &self.on).field("superusers", &self.superusers).finish_non_exhaustive()
    }
}

impl Auth {
    /// From a validated configuration.
    pub fn new(config: &BrokerConfig) -> Auth {
        Auth {
            on: config.auth_on(),
            superusers: config.auth.superusers.iter().filter_map(|p| Principal::parse(p).ok()).collect(),
            api_keys: config.auth.api_keys.iter().filter_map(|k| k.principal().ok().map(|p| (k.clone(), p))).collect(),
            verified: Mutex::new(HashMap::new()),
        }
    }

    pub fn is_on(&self) -> bool {
        self.on
    }

    /// Who `request` comes from. UNAUTHENTICATED when authentication is on and it proves no one;
    /// credentials that are given but wrong are refused even when a certificate would do.
    pub fn authenticate<T>(
        &self,
        request: &tonic::Request<T>,
        security: &SecurityState,
    ) -> Result<Caller, BrokerError> {
        let header = request.metadata().get("authorization").and_then(|v| v.to_str().ok());
        let peer = eddy_tls::peer_info(request);
        if let Some(acting_for) = request.metadata().get(eddy_auth::ON_BEHALF_OF) {
            return self.delegated(acting_for.to_str().unwrap_or_default(), peer);
        }
        let certificate =
            peer.and_then(|p| p.certificates.as_ref()).and_then(|c| c.first()).and_then(eddy_tls::principal_of);
        self.authenticate_parts(header, certificate.as_deref(), security)
    }

    /// A request a broker makes for a principal that proved itself to it with a client
    /// certificate (the HTTP gateway's callers): accepted only on a connection that presents a
    /// broker's certificate, since only a broker is trusted to have checked the caller.
    fn delegated(&self, acting_for: &str, peer: Option<&eddy_tls::PeerInfo>) -> Result<Caller, BrokerError> {
        if !self.on {
            return self.authenticate_parts(None, None, &SecurityState::default());
        }
        match eddy_tls::peer_broker(peer) {
            Ok(Some(_)) => {}
            _ => {
                deny_log("delegation", acting_for, "not a broker's connection");
                return Err(BrokerError::Unauthenticated(
                    "acting for another principal takes a broker's client certificate".into(),
                ));
            }
        }
        let principal = Principal::parse(acting_for).map_err(|e| {
            deny_log("delegation", acting_for, "not a principal");
            BrokerError::Unauthenticated(format!("the principal acted for is not valid: {e}"))
        })?;
        let superuser = self.superusers.contains(&principal);
        Ok(Caller { principal, mechanism: Mechanism::Certificate, superuser })
    }

    /// [`Auth::authenticate`] from an `Authorization` value and a certificate's principal name
    /// (the HTTP listener's entry).
    pub fn authenticate_parts(
        &self,
        authorization: Option<&str>,
        certificate: Option<&str>,
        security: &SecurityState,
    ) -> Result<Caller, BrokerError> {
        if !self.on {
            let principal = Principal::parse(ANONYMOUS).expect("a valid principal");
            return Ok(Caller { principal, mechanism: Mechanism::None, superuser: true });
        }
        let (principal, mechanism) = match (authorization, certificate) {
            (Some(value), _) => self.credentials(value, security)?,
            (None, Some(name)) => {
                let principal = Principal::user(name).map_err(|e| {
                    deny_log("certificate", name, "no usable user name");
                    BrokerError::Unauthenticated(format!("the client certificate names no usable user: {e}"))
                })?;
                (principal, Mechanism::Certificate)
            }
            (None, None) => {
                return Err(BrokerError::Unauthenticated(
                    "no credentials: send `authorization: Basic <user:password>` or `Bearer <API key>`, or a client \
                     certificate"
                        .into(),
                ));
            }
        };
        let superuser = self.superusers.contains(&principal);
        Ok(Caller { principal, mechanism, superuser })
    }

    fn credentials(&self, value: &str, security: &SecurityState) -> Result<(Principal, Mechanism), BrokerError> {
        let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
        if scheme.eq_ignore_ascii_case("bearer") {
            let token = rest.trim();
            return match self.api_keys.iter().find(|(key, _)| key.matches(token)) {
                Some((_, principal)) => Ok((principal.clone(), Mechanism::Token)),
                None => {
                    deny_log("token", "?", "unknown API key");
                    Err(BrokerError::Unauthenticated("the API key is not valid".into()))
                }
            };
        }
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(BrokerError::Unauthenticated(format!("unsupported authorization scheme {scheme:?}")));
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .ok()
            .and_then(|d| String::from_utf8(d).ok())
            .ok_or_else(|| {
                BrokerError::Unauthenticated("the Basic credentials are not base64 of user:password".into())
            })?;
        let (user, password) = decoded
            .split_once(':')
            .ok_or_else(|| BrokerError::Unauthenticated("the Basic credentials are not user:password".into()))?;
        let wrong = || {
            deny_log("password", user, "wrong user name or password");
            BrokerError::Unauthenticated("wrong user name or password".into())
        };
        let credential = security.users.get(user).ok_or_else(wrong)?;
        let key = (user.to_string(), sha2::Sha256::digest(password.as_bytes()).into());
        let remembered = self.verified.lock().expect("verified lock").get(&key) == Some(&credential.stored_key);
        if !remembered {
            if !credential.verify(password) {
                return Err(wrong());
            }
            let mut verified = self.verified.lock().expect("verified lock");
            if verified.len() >= VERIFIED_PASSWORDS_MAX {
                verified.clear();
            }
            verified.insert(key, credential.stored_key);
        }
        Ok((Principal::user(user).map_err(|_| wrong())?, Mechanism::Password))
    }

    /// Whether `caller` may do `operation` on `resource`: PERMISSION_DENIED (and an audit line)
    /// when not.
    pub fn authorize(
        &self,
        caller: &Caller,
        security: &SecurityState,
        resource: &Resource<'_>,
        operation: Operation,
    ) -> Result<(), BrokerError> {
        if caller.superuser || eddy_auth::authorize(&security.acls, &caller.principal, resource, operation) {
            return Ok(());
        }
        let operation = format!("{operation:?}").to_lowercase();
        let resource_type = resource_type_name(resource.resource_type);
        tracing::warn!(
            target: "eddy::audit",
            principal = %caller.principal,
            operation,
            resource_type,
            resource = resource.name,
            "denied"
        );
        Err(BrokerError::PermissionDenied {
            principal: caller.principal.to_string(),
            operation,
            resource_type: resource_type.into(),
            resource: resource.name.to_string(),
        })
    }

    /// Whether `caller` may do `operation` on `resource` (no error, no audit line): to filter
    /// listings.
    pub fn allows(
        &self,
        caller: &Caller,
        security: &SecurityState,
        resource: &Resource<'_>,
        operation: Operation,
    ) -> bool {
        caller.superuser || eddy_auth::authorize(&security.acls, &caller.principal, resource, operation)
    }
}

fn resource_type_name(resource_type: ResourceType) -> &'static str {
    match resource_type {
        ResourceType::Topic => "topic",
        ResourceType::Group => "group",
        ResourceType::Cluster => "cluster",
        ResourceType::Subject => "subject",
    }
}

fn deny_log(mechanism: &str, user: &str, reason: &str) {
    tracing::warn!(target: "eddy::audit", mechanism, user, reason, "authentication failed");
}

#[cfg(test)]
mod tests {
    use eddy_auth::{AclBinding, PatternType, Permission, ScramCredential};

    use super::*;

    fn config() -> BrokerConfig {
        let mut config = BrokerConfig::default();
        config.auth.enabled = true;
        config.auth.superusers = vec!["User:admin".into()];
        config.auth.api_keys =
            vec![eddy_auth::ApiKey { principal: "User:ci".into(), sha256: eddy_auth::token_sha256("eddy_secret") }];
        config
    }

    fn basic(user: &str, password: &str) -> String {
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
    }

    #[test]
    fn callers_are_who_their_credentials_say() {
        let auth = Auth::new(&config());
        let mut security = SecurityState::default();
        security.users.insert("alice".into(), ScramCredential::with_salt("pw", vec![7; 16], 4096));

        let alice = auth.authenticate_parts(Some(&basic("alice", "pw")), None, &security).unwrap();
        assert_eq!(
            (alice.principal.as_str(), alice.mechanism, alice.superuser),
            ("User:alice", Mechanism::Password, false)
        );
        // Remembered, and forgotten when the credential changes.
        assert!(auth.authenticate_parts(Some(&basic("alice", "pw")), None, &security).is_ok());
        security.users.insert("alice".into(), ScramCredential::with_salt("new", vec![8; 16], 4096));
        assert!(auth.authenticate_parts(Some(&basic("alice", "pw")), None, &security).is_err());
        assert!(auth.authenticate_parts(Some(&basic("alice", "new")), None, &security).is_ok());

        for wrong in [basic("alice", "nope"), basic("mallory", "pw"), "Basic !!".into(), "Digest x".into()] {
            let error = auth.authenticate_parts(Some(&wrong), Some("alice"), &security).unwrap_err();
            assert!(matches!(error, BrokerError::Unauthenticated(_)), "{wrong}: {error}");
        }
        let ci = auth.authenticate_parts(Some("Bearer eddy_secret"), None, &security).unwrap();
        assert_eq!((ci.principal.as_str(), ci.mechanism), ("User:ci", Mechanism::Token));
        assert!(auth.authenticate_parts(Some("Bearer eddy_other"), None, &security).is_err());
        let admin = auth.authenticate_parts(None, Some("admin"), &security).unwrap();
        assert!(admin.superuser && admin.mechanism == Mechanism::Certificate);
        let nobody = auth.authenticate_parts(None, None, &security).unwrap_err();
        assert!(matches!(nobody, BrokerError::Unauthenticated(_)));

        let off = Auth::new(&BrokerConfig::default());
        let anonymous = off.authenticate_parts(None, None, &security).unwrap();
        assert!(anonymous.superuser && anonymous.principal.as_str() == ANONYMOUS);
    }

    #[test]
    fn acls_decide_for_everyone_but_superusers() {
        let auth = Auth::new(&config());
        let mut security = SecurityState::default();
        security.acls.insert(AclBinding {
            principal: Principal::parse("User:alice").unwrap(),
            resource_type: ResourceType::Topic,
            pattern: PatternType::Prefixed,
            name: "orders".into(),
            operation: Operation::Write,
            permission: Permission::Allow,
        });
        let alice = auth.authenticate_parts(None, Some("alice"), &security).unwrap();
        assert!(auth.authorize(&alice, &security, &Resource::topic("orders.eu"), Operation::Write).is_ok());
        let denied = auth.authorize(&alice, &security, &Resource::topic("payments"), Operation::Write).unwrap_err();
        let status: tonic::Status = denied.into();
        assert_eq!(status.code(), tonic::Code::PermissionDenied);
        let admin = auth.authenticate_parts(None, Some("admin"), &security).unwrap();
        assert!(auth.authorize(&admin, &security, &Resource::topic("payments"), Operation::Delete).is_ok());
    }
}
