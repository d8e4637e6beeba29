//! Quotas: the rates a principal may produce, fetch and make requests at. The brokers enforce
//! them by holding answers back (eddy-broker's `quotas` module); the controller replicates the
//! ones set through the Security API, and a broker's configuration file may set some too.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Principal;

/// The rates of a quota; none (the default) is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuotaLimits {
    /// Bytes of produce requests (as encoded on the wire) per second.
    pub produce_bytes_per_second: Option<u64>,
    /// Bytes of records answered by fetches and pushed by subscriptions, per second.
    pub fetch_bytes_per_second: Option<u64>,
    /// Client requests (every RPC of the client listener) per second.
    pub requests_per_second: Option<u64>,
}

impl QuotaLimits {
    /// Whether it limits nothing.
    pub fn is_unlimited(&self) -> bool {
        *self == QuotaLimits::default()
    }

    /// The rates with their names, as configuration files and the CLI spell them.
    pub fn named(&self) -> [(&'static str, Option<u64>); 3] {
        [
            ("produce_bytes_per_second", self.produce_bytes_per_second),
            ("fetch_bytes_per_second", self.fetch_bytes_per_second),
            ("requests_per_second", self.requests_per_second),
        ]
    }

    /// Rates that are set must be positive: zero would block a principal forever, which is what
    /// ACLs are for. The error names the rate.
    pub fn check(&self) -> Result<(), String> {
        match self.named().into_iter().find(|(_, rate)| *rate == Some(0)) {
            Some((name, _)) => Err(format!("{name} must be > 0 (leave it out for no limit)")),
            None => Ok(()),
        }
    }
}

/// Whom a quota applies to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum QuotaEntity {
    /// Every principal without a quota of its own (superusers too).
    Default,
    /// One principal (never `User:*`).
    Principal(Principal),
}

impl std::fmt::Display for QuotaEntity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QuotaEntity::Default => f.write_str("<default>"),
            QuotaEntity::Principal(principal) => principal.fmt(f),
        }
    }
}

/// The limits that apply to `principal`, from the quotas set cluster-wide (`set`) and those of
/// a broker's configuration (`configured`, with `configured_default`), most specific first: a
/// quota set for the principal, then one configured for it, then the default set, then the
/// configured default. An entry replaces those after it whole: a rate it leaves out is
/// unlimited.
pub fn quota_for<'a>(
    principal: &Principal,
    set: &'a BTreeMap<QuotaEntity, QuotaLimits>,
    configured: Option<&'a QuotaLimits>,
    configured_default: &'a QuotaLimits,
) -> &'a QuotaLimits {
    set.get(&QuotaEntity::Principal(principal.clone()))
        .or(configured)
        .or_else(|| set.get(&QuotaEntity::Default))
        .unwrap_or(configured_default)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(n: u64) -> QuotaLimits {
        QuotaLimits { requests_per_second: Some(n), ..QuotaLimits::default() }
    }

    #[test]
    fn the_most_specific_quota_applies() {
        let alice = Principal::user("alice").unwrap();
        let bob = Principal::user("bob").unwrap();
        let configured_default = rate(1);
        let mut set = BTreeMap::new();
        assert_eq!(quota_for(&alice, &set, None, &configured_default), &rate(1));
        set.insert(QuotaEntity::Default, rate(2));
        assert_eq!(quota_for(&alice, &set, None, &configured_default), &rate(2));
        let configured = rate(3);
        assert_eq!(quota_for(&alice, &set, Some(&configured), &configured_default), &rate(3));
        set.insert(QuotaEntity::Principal(alice.clone()), QuotaLimits::default());
        assert!(quota_for(&alice, &set, Some(&configured), &configured_default).is_unlimited());
        assert_eq!(quota_for(&bob, &set, None, &configured_default), &rate(2));
    }

    #[test]
    fn zero_rates_are_refused_by_name() {
        let zero = QuotaLimits { fetch_bytes_per_second: Some(0), ..QuotaLimits::default() };
        assert!(zero.check().unwrap_err().contains("fetch_bytes_per_second"));
        assert!(rate(5).check().is_ok());
    }
}
