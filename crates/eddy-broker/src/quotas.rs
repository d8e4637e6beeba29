//! Per-principal quotas: produce and fetch byte rates and request rates, enforced by delaying
//! answers rather than refusing them, as Kafka does (docs/security.md, Quotas).
//!
//! Each (principal, quota) pair has a token bucket that refills at the quota's rate and holds at
//! most one second's worth. A request takes what it costs (its bytes, or one request) even when
//! the bucket holds less: the bucket goes into debt, and the answer is held back for the time the
//! refill takes to pay the debt back, capped at [`QUOTA_THROTTLE_MAX_MS`]. A client that waits
//! for its answers is thereby slowed to its quota without ever seeing an error.
//!
//! Quotas are per broker, as Kafka's: a principal spread over N brokers may use N times its
//! quota cluster-wide. Which quota applies to a principal: one set cluster-wide for it (`eddy
//! quota set`, replicated in the metadata), else one in this broker's configuration, else the
//! default set cluster-wide, else the configured default ([`eddy_auth::quota_for`]).
//!
//! Time comes from [`tokio::time::Instant`], so tests on tokio's paused clock see exact delays.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use std::collections::BTreeMap;

use eddy_auth::{Principal, QuotaEntity};
use tokio::time::Instant;

use crate::config::{QuotaConfig, QuotaLimits};

/// Longest an answer is held back for quotas, in milliseconds. It stays well below a client's
/// request timeout (eddy_client's `ClientConfig::request_timeout` defaults to 15 s; the broker
/// does not depend on the client crate, so the relation is stated here rather than asserted), so
/// a throttled request is slow, never timed out and retried.
pub const QUOTA_THROTTLE_MAX_MS: u64 = 5_000;

/// Most principals whose buckets are remembered at once. Past it, principals whose buckets are
/// full (idle long enough to owe nothing) are forgotten first, which loses nothing; only when
/// every one of them is in debt is the least recently seen forgotten, forgiving its debt.
pub const QUOTA_PRINCIPALS_MAX: usize = 10_000;

/// Debt is kept in nano-units (a billionth of a byte or of a request), so refills over any
/// number of nanoseconds are exact integers.
const NANOS_PER_SECOND: i128 = 1_000_000_000;

// The cap must be a delay a client still waits for.
const _: () = assert!(QUOTA_THROTTLE_MAX_MS > 0 && QUOTA_THROTTLE_MAX_MS < 15_000);

/// What a quota limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuotaKind {
    /// Bytes of produce requests, per second.
    ProduceBytes,
    /// Bytes of records returned by fetches and subscriptions, per second.
    FetchBytes,
    /// Client requests (every RPC), per second.
    Requests,
}

impl QuotaKind {
    /// Every kind, in the order of [`QuotaKind::index`].
    pub const ALL: [QuotaKind; 3] = [QuotaKind::ProduceBytes, QuotaKind::FetchBytes, QuotaKind::Requests];

    /// The `quota` label of the metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            QuotaKind::ProduceBytes => "produce_bytes",
            QuotaKind::FetchBytes => "fetch_bytes",
            QuotaKind::Requests => "requests",
        }
    }

    fn index(self) -> usize {
        match self {
            QuotaKind::ProduceBytes => 0,
            QuotaKind::FetchBytes => 1,
            QuotaKind::Requests => 2,
        }
    }
}

/// The rates of one principal, per [`QuotaKind::index`]; `None` is unlimited.
type Rates = [Option<u64>; 3];

fn rates_of(limits: &QuotaLimits) -> Rates {
    // Validation refuses a rate of 0; should one get here anyway, it limits nothing rather than
    // divide by zero.
    [limits.produce_bytes_per_second, limits.fetch_bytes_per_second, limits.requests_per_second]
        .map(|rate| rate.filter(|&r| r > 0))
}

/// One token bucket.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Tokens held, in nano-units; negative is debt.
    level: i128,
    /// When `level` was last brought up to date.
    at: Instant,
}

impl Bucket {
    fn full(rate: u64, now: Instant) -> Bucket {
        Bucket { level: capacity(rate), at: now }
    }

    /// Brings the level up to `now`: the refill since the last update, up to one second's worth.
    fn refill(&mut self, rate: u64, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_nanos() as i128;
        self.level = (self.level + i128::from(rate) * elapsed).min(capacity(rate));
        self.at = now;
    }

    /// Takes `amount` units and answers how long the debt, if any, takes to pay back (capped).
    fn take(&mut self, rate: u64, amount: u64, now: Instant) -> Duration {
        self.refill(rate, now);
        self.level -= i128::from(amount) * NANOS_PER_SECOND;
        // Debt beyond what the capped delay can make a client wait for is forgiven: a principal
        // that stops is never held back for longer than the cap afterwards.
        let debt_max = i128::from(rate) * i128::from(QUOTA_THROTTLE_MAX_MS) * (NANOS_PER_SECOND / 1_000);
        self.level = self.level.max(-debt_max);
        if self.level >= 0 {
            return Duration::ZERO;
        }
        // `level` is in nano-units and `rate` in units per second: debt / rate is in
        // nanoseconds, rounded up so the debt is paid when the delay ends.
        let nanos = self.level.unsigned_abs().div_ceil(u128::from(rate));
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX)).min(Duration::from_millis(QUOTA_THROTTLE_MAX_MS))
    }
}

/// One second's worth of `rate`, in nano-units: the burst a bucket allows.
fn capacity(rate: u64) -> i128 {
    i128::from(rate) * NANOS_PER_SECOND
}

/// The buckets of one principal.
#[derive(Debug)]
struct Tracked {
    buckets: [Option<Bucket>; 3],
    last_seen: Instant,
}

impl Tracked {
    /// Whether every bucket would be full now: the principal owes nothing and is idle.
    fn idle(&self, rates: &Rates, now: Instant) -> bool {
        self.buckets.iter().zip(rates).all(|(bucket, rate)| match (bucket, rate) {
            (Some(bucket), Some(rate)) => {
                let mut bucket = *bucket;
                bucket.refill(*rate, now);
                bucket.level >= capacity(*rate)
            }
            _ => true,
        })
    }
}

/// How long one answer is held back, and why.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Throttle {
    /// The delay: the longest any charged quota asked for, at most [`QUOTA_THROTTLE_MAX_MS`].
    pub delay: Duration,
}

impl Throttle {
    /// The delay in whole milliseconds (rounded up), as answers report it.
    pub fn delay_ms(&self) -> u32 {
        let millis = self.delay.as_nanos().div_ceil(1_000_000);
        u32::try_from(millis).unwrap_or(u32::MAX)
    }

    /// Waits out the delay.
    pub async fn wait(self) {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
    }
}

/// Quotas set cluster-wide, by whom they apply to (the metadata's `security.quotas`).
pub type QuotaSet = BTreeMap<QuotaEntity, QuotaLimits>;

/// The broker's quotas: the configured rates and the buckets of the principals seen lately.
#[derive(Debug)]
pub struct Quotas {
    default: QuotaLimits,
    principals: HashMap<Principal, QuotaLimits>,
    tracked: Mutex<HashMap<Principal, Tracked>>,
    tracked_max: usize,
}

impl Quotas {
    /// The quotas of a validated configuration (principals that do not parse are ignored:
    /// validation refuses them before a broker starts).
    pub fn new(config: &QuotaConfig) -> Quotas {
        let principals = config
            .principals
            .iter()
            .filter_map(|entry| Some((Principal::parse(&entry.principal).ok()?, entry.limits())))
            .collect();
        Quotas {
            default: config.default,
            principals,
            tracked: Mutex::new(HashMap::new()),
            tracked_max: QUOTA_PRINCIPALS_MAX,
        }
    }

    /// The rates that apply to `principal`, with `set` the quotas set cluster-wide: the most
    /// specific entry replaces the others whole.
    fn rates(&self, principal: &Principal, set: &QuotaSet) -> Rates {
        rates_of(eddy_auth::quota_for(principal, set, self.principals.get(principal), &self.default))
    }

    /// Charges `principal` each `(quota, amount)` and answers how long to hold its answer back:
    /// the longest delay any of the quotas asks for. `set` is the quotas set cluster-wide.
    /// Quotas the principal does not have cost nothing and are not recorded.
    pub fn charge(&self, principal: &Principal, charges: &[(QuotaKind, u64)], set: &QuotaSet) -> Throttle {
        let rates = self.rates(principal, set);
        if charges.iter().all(|(kind, _)| rates[kind.index()].is_none()) {
            return Throttle::default();
        }
        let now = Instant::now();
        let mut delays = [Duration::ZERO; 3];
        {
            let mut tracked = self.tracked.lock().expect("quota buckets lock");
            if !tracked.contains_key(principal) && tracked.len() >= self.tracked_max {
                self.make_room(&mut tracked, now, set);
            }
            let entry =
                tracked.entry(principal.clone()).or_insert_with(|| Tracked { buckets: [None; 3], last_seen: now });
            entry.last_seen = now;
            for &(kind, amount) in charges {
                let Some(rate) = rates[kind.index()] else { continue };
                let bucket = entry.buckets[kind.index()].get_or_insert_with(|| Bucket::full(rate, now));
                delays[kind.index()] = bucket.take(rate, amount, now);
            }
        }
        for &(kind, amount) in charges {
            if rates[kind.index()].is_some() {
                crate::metrics::record_quota(principal, kind, amount, delays[kind.index()]);
            }
        }
        Throttle { delay: delays.into_iter().max().unwrap_or_default() }
    }

    /// Forgets idle principals or, when none is idle, the least recently seen one.
    fn make_room(&self, tracked: &mut HashMap<Principal, Tracked>, now: Instant, set: &QuotaSet) {
        tracked.retain(|principal, t| !t.idle(&self.rates(principal, set), now));
        if tracked.len() >= self.tracked_max
            && let Some(oldest) = tracked.iter().min_by_key(|(_, t)| t.last_seen).map(|(p, _)| p.clone())
        {
            tracked.remove(&oldest);
        }
    }

    /// How many principals' buckets are remembered.
    pub fn tracked_principals(&self) -> usize {
        self.tracked.lock().expect("quota buckets lock").len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PrincipalQuota;

    fn user(name: &str) -> Principal {
        Principal::user(name).unwrap()
    }

    /// Alice may produce 1000 bytes and make 10 requests per second; everyone else may fetch
    /// 2000 bytes per second.
    fn quotas() -> Quotas {
        Quotas::new(&QuotaConfig {
            default: QuotaLimits { fetch_bytes_per_second: Some(2_000), ..QuotaLimits::default() },
            principals: vec![PrincipalQuota {
                principal: "User:alice".into(),
                produce_bytes_per_second: Some(1_000),
                requests_per_second: Some(10),
                ..PrincipalQuota::default()
            }],
        })
    }

    fn produce(quotas: &Quotas, who: &str, bytes: u64) -> Duration {
        quotas.charge(&user(who), &[(QuotaKind::ProduceBytes, bytes)], &QuotaSet::new()).delay
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_one_second_is_free_and_debt_is_paid_back_at_the_rate() {
        let quotas = quotas();
        assert_eq!(produce(&quotas, "alice", 1_000), Duration::ZERO, "one second's worth is the burst");
        // 500 bytes of debt at 1000 bytes per second.
        assert_eq!(produce(&quotas, "alice", 500), Duration::from_millis(500));
        // Waiting out the delay pays the debt back: the bucket is empty, not full.
        tokio::time::advance(Duration::from_millis(500)).await;
        assert_eq!(produce(&quotas, "alice", 250), Duration::from_millis(250));
        // A byte of debt takes a millisecond.
        tokio::time::advance(Duration::from_millis(250)).await;
        assert_eq!(produce(&quotas, "alice", 1), Duration::from_millis(1));
    }

    #[tokio::test(start_paused = true)]
    async fn refill_stops_at_one_seconds_worth() {
        let quotas = quotas();
        assert_eq!(produce(&quotas, "alice", 1_000), Duration::ZERO);
        // An hour idle refills one second's worth, not an hour's.
        tokio::time::advance(Duration::from_secs(3_600)).await;
        assert_eq!(produce(&quotas, "alice", 1_000), Duration::ZERO);
        assert_eq!(produce(&quotas, "alice", 100), Duration::from_millis(100));
        // A partial refill: 300 ms is 300 bytes, 100 of which pay the debt.
        tokio::time::advance(Duration::from_millis(300)).await;
        assert_eq!(produce(&quotas, "alice", 200), Duration::ZERO);
        assert_eq!(produce(&quotas, "alice", 1), Duration::from_millis(1));
    }

    #[tokio::test(start_paused = true)]
    async fn the_delay_is_capped_and_debt_beyond_it_forgiven() {
        let quotas = quotas();
        let cap = Duration::from_millis(QUOTA_THROTTLE_MAX_MS);
        // 100 seconds' worth at once: held back for the cap only.
        assert_eq!(produce(&quotas, "alice", 100_000), cap);
        assert_eq!(produce(&quotas, "alice", 100_000), cap, "still in debt: the cap again");
        // After waiting the cap out, the principal owes nothing more.
        tokio::time::advance(cap).await;
        assert_eq!(produce(&quotas, "alice", 1), Duration::from_millis(1));
    }

    #[tokio::test(start_paused = true)]
    async fn the_longest_quota_decides_and_unlimited_costs_nothing() {
        let quotas = quotas();
        let alice = user("alice");
        // Ten requests a second: the eleventh owes a tenth of a second; its 1500 bytes owe half a
        // second, which decides.
        for _ in 0..10 {
            assert_eq!(quotas.charge(&alice, &[(QuotaKind::Requests, 1)], &QuotaSet::new()).delay, Duration::ZERO);
        }
        let throttle =
            quotas.charge(&alice, &[(QuotaKind::ProduceBytes, 1_500), (QuotaKind::Requests, 1)], &QuotaSet::new());
        assert_eq!(throttle.delay, Duration::from_millis(500));
        assert_eq!(throttle.delay_ms(), 500);
        // Alice's own entry replaces the defaults whole: her fetches are unlimited.
        assert_eq!(quotas.charge(&alice, &[(QuotaKind::FetchBytes, 1 << 30)], &QuotaSet::new()).delay, Duration::ZERO);
        // Bob has the default: fetches limited, the rest unlimited and not tracked.
        let bob = user("bob");
        assert_eq!(quotas.charge(&bob, &[(QuotaKind::ProduceBytes, 1 << 30)], &QuotaSet::new()).delay, Duration::ZERO);
        assert_eq!(quotas.tracked_principals(), 1, "only alice has buckets so far");
        assert_eq!(
            quotas.charge(&bob, &[(QuotaKind::FetchBytes, 3_000)], &QuotaSet::new()).delay,
            Duration::from_millis(500)
        );
        assert_eq!(quotas.tracked_principals(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn tracked_principals_are_bounded() {
        let quotas = Quotas::new(&QuotaConfig {
            default: QuotaLimits { requests_per_second: Some(1), ..QuotaLimits::default() },
            principals: Vec::new(),
        });
        // Every principal in debt: the bound holds by forgetting the least recently seen, u0.
        for i in 0..QUOTA_PRINCIPALS_MAX {
            quotas.charge(&user(&format!("u{i}")), &[(QuotaKind::Requests, 2)], &QuotaSet::new());
            if i == 0 {
                tokio::time::advance(Duration::from_millis(1)).await;
            }
        }
        assert_eq!(quotas.tracked_principals(), QUOTA_PRINCIPALS_MAX);
        tokio::time::advance(Duration::from_millis(1)).await;
        quotas.charge(&user("late"), &[(QuotaKind::Requests, 1)], &QuotaSet::new());
        assert_eq!(quotas.tracked_principals(), QUOTA_PRINCIPALS_MAX, "one forgotten for the newcomer");
        // The others still owe; the one forgotten starts over with a full bucket.
        assert!(!quotas.charge(&user("u1"), &[(QuotaKind::Requests, 1)], &QuotaSet::new()).delay.is_zero());
        assert_eq!(quotas.charge(&user("u0"), &[(QuotaKind::Requests, 1)], &QuotaSet::new()).delay, Duration::ZERO);
        assert_eq!(quotas.tracked_principals(), QUOTA_PRINCIPALS_MAX);
        // Once they are idle (buckets full again), a newcomer makes them all go at once.
        tokio::time::advance(Duration::from_secs(10)).await;
        quotas.charge(&user("later"), &[(QuotaKind::Requests, 1)], &QuotaSet::new());
        assert_eq!(quotas.tracked_principals(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn quotas_set_cluster_wide_come_before_configured_ones() {
        let quotas = quotas();
        let (alice, bob) = (user("alice"), user("bob"));
        let requests = |n| QuotaLimits { requests_per_second: Some(n), ..QuotaLimits::default() };
        let mut set = QuotaSet::new();
        set.insert(QuotaEntity::Default, requests(1));
        // Alice keeps her configured entry (produce limited, requests at 10); bob, without one,
        // gets the default set for everyone (one request a second) instead of the configured one.
        let take = |who: &Principal, set: &QuotaSet| quotas.charge(who, &[(QuotaKind::Requests, 2)], set).delay;
        assert_eq!(take(&bob, &set), Duration::from_secs(1));
        assert_eq!(quotas.charge(&bob, &[(QuotaKind::FetchBytes, 1 << 30)], &set).delay, Duration::ZERO);
        assert_eq!(take(&alice, &set), Duration::ZERO);
        // A quota set for alice replaces her configured one.
        set.insert(QuotaEntity::Principal(alice.clone()), requests(1));
        assert_eq!(take(&alice, &set), Duration::from_secs(1));
        assert_eq!(quotas.charge(&alice, &[(QuotaKind::ProduceBytes, 1 << 30)], &set).delay, Duration::ZERO);
    }
}
