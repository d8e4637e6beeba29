//! Eddy's security model as pure logic (no IO, no clock): who a caller is and what it may do.
//!
//! - [`Principal`]: an authenticated identity, `User:alice`.
//! - [`ScramCredential`]: a user's password as SCRAM-SHA-256 stores it (salt, iteration count,
//!   stored key, server key; never the password), and the check of a password against it.
//! - [`ApiKey`]: a static bearer token, kept as its SHA-256 hash.
//! - [`AclBinding`] and [`authorize`]: access control lists over topics, groups, the cluster and
//!   schema subjects, with literal or prefixed names, evaluated deny-first.
//!
//! The controller replicates users and ACLs; every broker authenticates and authorizes with its
//! copy (`eddy-broker`'s `auth` module).

mod acl;
mod principal;
mod scram;
mod token;

pub use acl::{AclBinding, AclFilter, Operation, PatternType, Permission, Resource, ResourceType, authorize};
pub use principal::{Principal, PrincipalError, USER_NAME_MAX_BYTES, check_name};
pub use scram::{
    SCRAM_ITERATIONS_DEFAULT, SCRAM_ITERATIONS_MAX, SCRAM_ITERATIONS_MIN, SCRAM_SALT_MAX_BYTES, ScramCredential,
    salted_password,
};
pub use token::{ApiKey, generate_token, token_sha256};
