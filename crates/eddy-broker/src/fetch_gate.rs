//! The bounds on the fetches one broker serves at once: how many may wait for records (long
//! polls, and subscriptions, each of which holds a place for as long as it lasts), over all
//! connections and per connection, and how many bytes of answers may be read
//! at the same time. A fetch past a bound is answered BUSY (retriable, nothing done) instead of
//! queueing without limit; see `eddy_limits` for the numbers.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eddy_limits::{
    BUSY_RETRY_AFTER_MS, FETCH_BUDGET_WAIT_MS, FETCH_BYTES_IN_FLIGHT_MAX, FETCH_WAITS_MAX,
    FETCH_WAITS_PER_CONNECTION_MAX,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::BrokerError;

// A reservation is counted in bytes as one semaphore permit per byte.
const _: () = assert!(FETCH_BYTES_IN_FLIGHT_MAX <= u32::MAX as usize);

/// The broker's fetch bounds, shared by every connection.
#[derive(Debug)]
pub struct FetchGate {
    bytes: Arc<Semaphore>,
    waits: Arc<Semaphore>,
    waits_per_connection: Mutex<HashMap<SocketAddr, usize>>,
    waits_per_connection_max: usize,
    waits_max: usize,
    budget_wait: Duration,
}

impl Default for FetchGate {
    fn default() -> Self {
        Self::new(FETCH_BYTES_IN_FLIGHT_MAX, FETCH_WAITS_MAX, FETCH_WAITS_PER_CONNECTION_MAX)
    }
}

/// A long poll's place (or a subscription's, for its whole life), given back when dropped.
#[derive(Debug)]
pub struct WaitSlot {
    gate: Arc<FetchGate>,
    connection: Option<SocketAddr>,
    _permit: OwnedSemaphorePermit,
}

impl Drop for WaitSlot {
    fn drop(&mut self) {
        if let Some(connection) = self.connection {
            let mut counts = self.gate.waits_per_connection.lock().expect("fetch gate lock");
            if let Some(count) = counts.get_mut(&connection) {
                *count -= 1;
                if *count == 0 {
                    counts.remove(&connection);
                }
            }
        }
    }
}

fn busy(limit: &'static str) -> BrokerError {
    metrics::counter!("eddy_busy_refusals_total", "limit" => limit).increment(1);
    BrokerError::Busy { limit, retry_after_ms: BUSY_RETRY_AFTER_MS }
}

impl FetchGate {
    /// A gate with the given bounds (the defaults are `eddy_limits`'; tests use small ones).
    pub fn new(bytes_max: usize, waits_max: usize, waits_per_connection_max: usize) -> Self {
        Self {
            bytes: Arc::new(Semaphore::new(bytes_max)),
            waits: Arc::new(Semaphore::new(waits_max)),
            waits_per_connection: Mutex::new(HashMap::new()),
            waits_per_connection_max,
            waits_max,
            budget_wait: Duration::from_millis(FETCH_BUDGET_WAIT_MS),
        }
    }

    /// A place for one long poll from `connection` (unknown in the simulation, where only the
    /// broker-wide bound applies); BUSY when the broker or the connection is at its bound.
    pub fn wait_slot(self: &Arc<Self>, connection: Option<SocketAddr>) -> Result<WaitSlot, BrokerError> {
        let permit = self.waits.clone().try_acquire_owned().map_err(|_| busy("fetch_waits_max"))?;
        if let Some(connection) = connection {
            let mut counts = self.waits_per_connection.lock().expect("fetch gate lock");
            let count = counts.entry(connection).or_insert(0);
            if *count >= self.waits_per_connection_max {
                return Err(busy("fetch_waits_per_connection_max"));
            }
            *count += 1;
        }
        Ok(WaitSlot { gate: self.clone(), connection, _permit: permit })
    }

    /// Reserves `bytes` of the answers being read, waiting for room a bounded time; BUSY after
    /// that. The reservation is given back when the permit is dropped.
    pub async fn reserve_bytes(&self, bytes: usize) -> Result<OwnedSemaphorePermit, BrokerError> {
        let bytes = bytes.min(FETCH_BYTES_IN_FLIGHT_MAX) as u32;
        let acquire = self.bytes.clone().acquire_many_owned(bytes);
        match tokio::time::timeout(self.budget_wait, acquire).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_closed)) => Err(BrokerError::ShuttingDown),
            Err(_elapsed) => Err(busy("fetch_bytes_in_flight_max")),
        }
    }

    /// Long polls waiting now.
    pub fn waiting(&self) -> usize {
        self.waits_max.saturating_sub(self.waits.available_permits())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(error: BrokerError) -> &'static str {
        match error {
            BrokerError::Busy { limit, .. } => limit,
            other => panic!("expected BUSY, got {other:?}"),
        }
    }

    #[test]
    fn long_polls_are_bounded_per_connection_and_per_broker() {
        let gate = Arc::new(FetchGate::new(1 << 20, 3, 2));
        let a: SocketAddr = "127.0.0.1:1000".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:1001".parse().unwrap();
        let first = gate.wait_slot(Some(a)).unwrap();
        let _second = gate.wait_slot(Some(a)).unwrap();
        assert_eq!(reason(gate.wait_slot(Some(a)).unwrap_err()), "fetch_waits_per_connection_max");
        let _third = gate.wait_slot(Some(b)).unwrap();
        assert_eq!(reason(gate.wait_slot(Some(b)).unwrap_err()), "fetch_waits_max");
        drop(first);
        // The slot given back serves either connection again.
        let _again = gate.wait_slot(Some(a)).unwrap();
        assert_eq!(gate.waits_per_connection.lock().unwrap()[&a], 2);
    }

    #[test]
    fn a_refused_connection_slot_gives_back_the_broker_one() {
        let gate = Arc::new(FetchGate::new(1 << 20, 10, 1));
        let a: SocketAddr = "127.0.0.1:1000".parse().unwrap();
        let _held = gate.wait_slot(Some(a)).unwrap();
        for _ in 0..20 {
            assert!(gate.wait_slot(Some(a)).is_err());
        }
        assert_eq!(gate.waits.available_permits(), 9);
    }

    #[tokio::test]
    async fn fetch_bytes_wait_for_room_then_are_refused() {
        let gate = Arc::new(FetchGate { budget_wait: Duration::from_millis(200), ..FetchGate::new(100, 10, 10) });
        let held = gate.reserve_bytes(80).await.unwrap();
        let waiting = {
            let gate = gate.clone();
            tokio::spawn(async move { gate.reserve_bytes(50).await.map(|_| ()) })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        drop(held);
        waiting.await.unwrap().unwrap();
        let _held = gate.reserve_bytes(80).await.unwrap();
        assert_eq!(reason(gate.reserve_bytes(50).await.unwrap_err()), "fetch_bytes_in_flight_max");
    }
}
