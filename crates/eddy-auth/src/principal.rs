//! Authenticated identities.

use serde::{Deserialize, Serialize};

/// Who a request comes from, as ACLs name it: `User:<name>`. Users authenticated by password,
/// by API key or by client certificate (its subject's common name) are all `User:` principals,
/// so one ACL covers a service whichever way it authenticates.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Principal(String);

/// A principal or user name that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrincipalError {
    #[error("a principal is User:<name>, not {0:?}")]
    NotAUser(String),
    #[error("a user name is 1 to {USER_NAME_MAX_BYTES} bytes of letters, digits and . _ - @, not {0:?}")]
    BadName(String),
}

/// Longest user name, in bytes.
pub const USER_NAME_MAX_BYTES: usize = 255;

const USER_PREFIX: &str = "User:";

impl Principal {
    /// The principal of user `name`.
    pub fn user(name: &str) -> Result<Principal, PrincipalError> {
        check_name(name)?;
        Ok(Principal(format!("{USER_PREFIX}{name}")))
    }

    /// Parses `User:<name>`, or `User:*` (every principal, in ACLs only).
    pub fn parse(text: &str) -> Result<Principal, PrincipalError> {
        let name = text.strip_prefix(USER_PREFIX).ok_or_else(|| PrincipalError::NotAUser(text.to_string()))?;
        if name == "*" {
            return Ok(Principal::any());
        }
        Principal::user(name)
    }

    /// `User:*`: matches every principal in an ACL.
    pub fn any() -> Principal {
        Principal(format!("{USER_PREFIX}*"))
    }

    pub fn is_any(&self) -> bool {
        self.0 == "User:*"
    }

    /// The user name (what follows `User:`).
    pub fn name(&self) -> &str {
        &self.0[USER_PREFIX.len()..]
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks a user name: the characters a certificate's common name, a header and a log line all
/// carry safely.
pub fn check_name(name: &str) -> Result<(), PrincipalError> {
    let ok = !name.is_empty()
        && name.len() <= USER_NAME_MAX_BYTES
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok { Ok(()) } else { Err(PrincipalError::BadName(name.to_string())) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principals_parse_and_name_their_problem() {
        assert_eq!(Principal::parse("User:alice").unwrap().name(), "alice");
        assert!(Principal::parse("User:*").unwrap().is_any());
        assert_eq!(Principal::parse("alice"), Err(PrincipalError::NotAUser("alice".into())));
        assert!(matches!(Principal::parse("User:"), Err(PrincipalError::BadName(_))));
        assert!(matches!(Principal::user("a b"), Err(PrincipalError::BadName(_))));
        assert!(Principal::user(&"x".repeat(USER_NAME_MAX_BYTES + 1)).is_err());
        assert_eq!(Principal::user("svc-payments@shop").unwrap().to_string(), "User:svc-payments@shop");
    }
}
