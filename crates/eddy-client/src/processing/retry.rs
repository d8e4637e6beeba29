//! In-place retries: what a handler answers, the backoff between attempts, and the attempt loop.

use std::future::Future;
use std::time::Duration;

/// Why a handler did not handle a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandlerError {
    /// Trying again later may succeed (a dependency is down, a timeout, a conflict): the record
    /// is retried with backoff, then sent on to the retry topics and the dead-letter topic.
    #[error("{0}")]
    Retriable(String),
    /// Trying again cannot succeed (the record is malformed, a business rule refuses it): the
    /// record goes straight to the dead-letter topic.
    #[error("{0}")]
    Fatal(String),
}

impl HandlerError {
    pub fn retriable(error: impl std::fmt::Display) -> Self {
        HandlerError::Retriable(error.to_string())
    }

    pub fn fatal(error: impl std::fmt::Display) -> Self {
        HandlerError::Fatal(error.to_string())
    }

    pub fn is_fatal(&self) -> bool {
        matches!(self, HandlerError::Fatal(_))
    }

    pub fn message(&self) -> &str {
        match self {
            HandlerError::Retriable(m) | HandlerError::Fatal(m) => m,
        }
    }
}

/// How often, and how far apart, a failing record is tried again in place (while it holds back
/// the later records of its key, and no others).
///
/// Attempt `n` (from 1) that fails retriably is followed, unless it was the last, by a wait of
/// `min(cap, base * factor^(n-1))`, of which a random fraction up to `jitter` is taken off
/// ("equal jitter" at 0.5, none at 0), so that many consumers failing together do not retry in
/// lockstep.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Tries in place, the first included (at least 1).
    pub max_attempts: u32,
    /// The wait after the first failed attempt.
    pub base: Duration,
    /// Each further wait is this many times the one before (at least 1).
    pub factor: f64,
    /// No wait is longer.
    pub cap: Duration,
    /// The largest fraction of a wait taken off at random, from 0 to 1.
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base: Duration::from_millis(100),
            factor: 2.0,
            cap: Duration::from_secs(10),
            jitter: 0.2,
        }
    }
}

impl RetryPolicy {
    /// No retries in place: a failed record goes on to the retry topics or the dead-letter topic.
    pub fn none() -> Self {
        Self { max_attempts: 1, ..Self::default() }
    }

    /// Checks the policy, naming the bad field.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_attempts == 0 {
            return Err("retry.max_attempts must be at least 1".into());
        }
        if !(self.factor.is_finite() && self.factor >= 1.0) {
            return Err(format!("retry.factor must be a number of at least 1, not {}", self.factor));
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err(format!("retry.jitter must be between 0 and 1, not {}", self.jitter));
        }
        if self.base > self.cap {
            return Err(format!("retry.base ({:?}) must not exceed retry.cap ({:?})", self.base, self.cap));
        }
        Ok(())
    }

    /// The wait after failed attempt `attempt` (from 1), given a uniform random number in
    /// [0, 1) for the jitter.
    pub fn delay(&self, attempt: u32, unit_random: f64) -> Duration {
        let exponent = attempt.saturating_sub(1).min(64) as i32;
        let full = self.base.as_secs_f64() * self.factor.powi(exponent);
        let capped = full.min(self.cap.as_secs_f64());
        let taken_off = capped * self.jitter * unit_random.clamp(0.0, 1.0);
        Duration::from_secs_f64((capped - taken_off).max(0.0))
    }
}

/// How trying a record in place ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tried {
    Handled {
        attempts: u32,
    },
    /// Every attempt failed, or one failed fatally.
    Failed {
        attempts: u32,
        first_error: String,
        last_error: String,
        fatal: bool,
    },
}

/// Calls `attempt` (with the attempt's number, from `first_attempt`) until it succeeds, fails
/// fatally, or `policy.max_attempts` attempts were made, sleeping the policy's backoff between
/// attempts. `first_error` is the error of an earlier round (a retry topic's record), if any.
/// `on_retry` is told before each wait (for metrics).
pub(crate) async fn try_in_place<F, Fut>(
    policy: &RetryPolicy,
    first_attempt: u32,
    mut first_error: Option<String>,
    mut attempt: F,
    mut on_retry: impl FnMut(u32, &HandlerError),
) -> Tried
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<(), HandlerError>>,
{
    let mut made = 0;
    loop {
        made += 1;
        let number = first_attempt + made - 1;
        let error = match attempt(number).await {
            Ok(()) => return Tried::Handled { attempts: number },
            Err(error) => error,
        };
        let first = first_error.get_or_insert_with(|| error.message().to_string()).clone();
        if error.is_fatal() || made >= policy.max_attempts {
            return Tried::Failed {
                attempts: number,
                first_error: first,
                last_error: error.message().to_string(),
                fatal: error.is_fatal(),
            };
        }
        on_retry(number, &error);
        tokio::time::sleep(policy.delay(made, rand::random::<f64>())).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tokio::time::Instant;

    use super::*;

    fn policy(max_attempts: u32) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            base: Duration::from_millis(100),
            factor: 2.0,
            cap: Duration::from_millis(500),
            jitter: 0.0,
        }
    }

    #[test]
    fn delays_grow_by_the_factor_up_to_the_cap() {
        let p = policy(10);
        let delays: Vec<u128> = (1..=6).map(|n| p.delay(n, 0.7).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 500, 500, 500]);
    }

    #[test]
    fn jitter_takes_off_at_most_its_fraction() {
        let p = RetryPolicy { jitter: 0.5, ..policy(10) };
        assert_eq!(p.delay(2, 0.0), Duration::from_millis(200));
        assert_eq!(p.delay(2, 0.5), Duration::from_millis(150));
        assert_eq!(p.delay(2, 0.999_999).as_millis(), 100);
        // A huge attempt number neither overflows nor passes the cap.
        assert_eq!(p.delay(u32::MAX, 0.0), Duration::from_millis(500));
    }

    #[test]
    fn bad_policies_name_their_field() {
        assert!(policy(0).validate().unwrap_err().contains("max_attempts"));
        assert!(RetryPolicy { factor: 0.5, ..policy(3) }.validate().unwrap_err().contains("factor"));
        assert!(RetryPolicy { jitter: 1.5, ..policy(3) }.validate().unwrap_err().contains("jitter"));
        let base_over_cap = RetryPolicy { base: Duration::from_secs(2), cap: Duration::from_secs(1), ..policy(3) };
        assert!(base_over_cap.validate().unwrap_err().contains("base"));
        assert!(RetryPolicy::default().validate().is_ok());
    }

    /// Records when each attempt started, on tokio's paused (virtual) clock.
    async fn run(policy: RetryPolicy, outcomes: Vec<Result<(), HandlerError>>) -> (Tried, Vec<u128>, Vec<u32>) {
        let start = Instant::now();
        let times = Arc::new(Mutex::new(Vec::new()));
        let outcomes = Arc::new(Mutex::new(outcomes.into_iter()));
        let mut retried = Vec::new();
        let tried = try_in_place(
            &policy,
            1,
            None,
            |_| {
                let (times, outcomes) = (times.clone(), outcomes.clone());
                async move {
                    times.lock().unwrap().push(start.elapsed().as_millis());
                    outcomes.lock().unwrap().next().expect("an outcome per attempt")
                }
            },
            |n, _| retried.push(n),
        )
        .await;
        let times = times.lock().unwrap().clone();
        (tried, times, retried)
    }

    #[tokio::test(start_paused = true)]
    async fn retries_back_off_exponentially_on_the_virtual_clock() {
        let fail = || Err(HandlerError::retriable("gateway timeout"));
        let (tried, times, retried) = run(policy(4), vec![fail(), fail(), fail(), Ok(())]).await;
        assert_eq!(tried, Tried::Handled { attempts: 4 });
        assert_eq!(times, [0, 100, 300, 700]);
        assert_eq!(retried, [1, 2, 3]);
    }

    #[tokio::test(start_paused = true)]
    async fn exhausted_attempts_report_the_first_and_last_errors() {
        let outcomes = vec![
            Err(HandlerError::retriable("first")),
            Err(HandlerError::retriable("second")),
            Err(HandlerError::retriable("third")),
        ];
        let (tried, times, _) = run(policy(3), outcomes).await;
        let expected =
            Tried::Failed { attempts: 3, first_error: "first".into(), last_error: "third".into(), fatal: false };
        assert_eq!(tried, expected);
        // No wait after the last attempt: the record moves on at once.
        assert_eq!(times, [0, 100, 300]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_fatal_error_stops_at_once() {
        let outcomes = vec![Err(HandlerError::retriable("busy")), Err(HandlerError::fatal("card declined"))];
        let (tried, times, _) = run(policy(5), outcomes).await;
        let expected =
            Tried::Failed { attempts: 2, first_error: "busy".into(), last_error: "card declined".into(), fatal: true };
        assert_eq!(tried, expected);
        assert_eq!(times, [0, 100]);
    }

    #[tokio::test(start_paused = true)]
    async fn jittered_waits_stay_within_their_bounds() {
        let p = RetryPolicy { jitter: 0.5, ..policy(6) };
        let fail = || Err(HandlerError::retriable("down"));
        let (_, times, _) = run(p, (0..6).map(|_| fail()).collect()).await;
        let gaps: Vec<u128> = times.windows(2).map(|w| w[1] - w[0]).collect();
        for (gap, full) in gaps.iter().zip([100u128, 200, 400, 500, 500]) {
            assert!(*gap <= full && *gap >= full / 2, "gap {gap} ms outside [{}, {full}]", full / 2);
        }
    }
}
