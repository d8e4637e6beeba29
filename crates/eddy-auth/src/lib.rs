//! Eddy's security model as pure logic (no IO, no clock): who a caller is and what it may do.
//!
//! - [`Principal`]: an authenticated identity, `User:alice`.
//! - [`ScramCredential`]: a user's password as SCRAM-SHA-256 stores it (salt, iteration count,
//!   stored key, server key; never the password), and the check of a password against it.
//! - [`ApiKey`]: a static bearer token, kept as its SHA-256 hash.
//! - [`AclBinding`] and [`authorize`]: access control lists over topics, groups, the cluster and
//!   schema subjects, with literal or prefixed names, evaluated deny-first.
//! - [`QuotaLimits`] and [`quota_for`]: the produce, fetch and request rates a principal may
//!   use, and which quota applies to it.
//!
//! The controller replicates users, ACLs and quotas; every broker authenticates, authorizes and
//! throttles with its copy (`eddy-broker`'s `auth` and `quotas` modules).

mod acl;
mod principal;
mod quota;
mod scram;
mod token;

pub use acl::{AclBinding, AclFilter, Operation, PatternType, Permission, Resource, ResourceType, authorize};
pub use principal::{Principal, PrincipalError, USER_NAME_MAX_BYTES, check_name};
pub use quota::{QuotaEntity, QuotaLimits, quota_for};
pub use scram::{
    SCRAM_ITERATIONS_DEFAULT, SCRAM_ITERATIONS_MAX, SCRAM_ITERATIONS_MIN, SCRAM_SALT_MAX_BYTES, ScramCredential,
    salted_password,
};
pub use token::{ApiKey, generate_token, token_sha256};

/// The request metadata naming the principal (`User:alice`) a broker's own connection acts
/// for: an HTTP gateway whose caller proved itself with a client certificate, which cannot be
/// passed on. Brokers honour it only on a connection presenting a broker's certificate.
pub const ON_BEHALF_OF: &str = "eddy-on-behalf-of";
