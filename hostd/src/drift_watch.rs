//! The reconcile loop: when to run a drift check (`core/drift.rs` says what it does).
//!
//! A check runs on every timer tick ([`PERIOD`]: drives appearing or vanishing have no
//! event without udev) and after netlink says a link, an address or a route changed — once
//! the events have been quiet for [`QUIET`], since one `ip link` or one correction of ours
//! sends several. After a check whose correction failed, events start no check until the next
//! tick: the undo of a failed correction sends events too, and would otherwise start the same
//! failing correction again at once, in a loop.

use std::future::Future;
use std::time::Duration;

use futures::{Stream, StreamExt};

pub use cairn_api::{DriftOutcome, DriftView};

/// How often the appliance is compared with the document without an event.
pub const PERIOD: Duration = Duration::from_secs(60);
/// How long events must stop before a check: a burst is one change.
pub const QUIET: Duration = Duration::from_secs(2);

/// Why a check is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Tick,
    Event,
}

/// Pure: whether a trigger starts a check, given how the last one went.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Gate {
    /// The last check's correction failed: only a tick retries it.
    failed: bool,
}

impl Gate {
    pub fn admits(&self, trigger: Trigger) -> bool {
        trigger == Trigger::Tick || !self.failed
    }

    /// Records a check's findings (`None`: it did not run, an apply or a storage job was
    /// busy).
    pub fn checked(&mut self, found: Option<&[DriftView]>) {
        if let Some(found) = found {
            self.failed = found
                .iter()
                .any(|view| view.outcome == DriftOutcome::Failed);
        }
    }
}

/// Runs `check` on every tick of `period` and after each burst of `events`, forever (or until
/// `events` ends: then on ticks only).
pub async fn run<E, C, F>(mut events: E, period: Duration, quiet: Duration, mut check: C)
where
    E: Stream<Item = ()> + Unpin,
    C: FnMut() -> F,
    F: Future<Output = Option<Vec<DriftView>>>,
{
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate; start-up has just reconciled.
    ticks.tick().await;
    let mut gate = Gate::default();
    let mut events_open = true;
    loop {
        let trigger = tokio::select! {
            _ = ticks.tick() => Trigger::Tick,
            event = events.next(), if events_open => match event {
                Some(()) => Trigger::Event,
                None => {
                    tracing::warn!("the netlink event stream ended; drift is checked on the timer only");
                    events_open = false;
                    continue;
                }
            },
        };
        if !gate.admits(trigger) {
            continue;
        }
        if trigger == Trigger::Event {
            // Wait out the burst; a stream that ends also ends the wait.
            while let Ok(Some(())) = tokio::time::timeout(quiet, events.next()).await {}
        }
        let found = check().await;
        gate.checked(found.as_deref());
    }
}

/// The kernel's link, address and route events, one `()` each, from a netlink socket bound
/// to their multicast groups. Its connection task runs on the caller's runtime.
pub fn netlink_events() -> std::io::Result<impl Stream<Item = ()> + Unpin> {
    use rtnetlink::constants::{
        RTMGRP_IPV4_IFADDR, RTMGRP_IPV4_ROUTE, RTMGRP_IPV6_IFADDR, RTMGRP_IPV6_ROUTE, RTMGRP_LINK,
    };
    use rtnetlink::sys::{AsyncSocket, SocketAddr};

    let (mut connection, _handle, messages) = rtnetlink::new_connection()?;
    let groups = RTMGRP_LINK
        | RTMGRP_IPV4_IFADDR
        | RTMGRP_IPV6_IFADDR
        | RTMGRP_IPV4_ROUTE
        | RTMGRP_IPV6_ROUTE;
    connection
        .socket_mut()
        .socket_mut()
        .bind(&SocketAddr::new(0, groups))?;
    tokio::spawn(connection);
    Ok(messages.map(|_| ()))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn found(outcome: DriftOutcome) -> Vec<DriftView> {
        vec![DriftView {
            subsystem: "network".into(),
            difference: "bring lan2 up".into(),
            outcome,
            why: String::new(),
            seen_unix: 0,
        }]
    }

    #[test]
    fn after_a_failed_correction_only_a_tick_starts_a_check() {
        let mut gate = Gate::default();
        assert!(gate.admits(Trigger::Event));
        gate.checked(Some(&found(DriftOutcome::Failed)));
        assert!(!gate.admits(Trigger::Event));
        assert!(gate.admits(Trigger::Tick));
        // A check that did not run (a job was busy) changes nothing.
        gate.checked(None);
        assert!(!gate.admits(Trigger::Event));
        gate.checked(Some(&found(DriftOutcome::Corrected)));
        assert!(gate.admits(Trigger::Event));
        gate.checked(Some(&found(DriftOutcome::Reported)));
        assert!(gate.admits(Trigger::Event));
    }

    /// Runs the loop over a channel of events with a check that counts its calls and
    /// answers `outcome`; returns the sender and the count.
    fn start(
        outcome: DriftOutcome,
    ) -> (
        futures::channel::mpsc::UnboundedSender<()>,
        Arc<AtomicUsize>,
    ) {
        let (sender, events) = futures::channel::mpsc::unbounded();
        let checks = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&checks);
        tokio::spawn(run(
            events,
            Duration::from_secs(60),
            Duration::from_secs(2),
            move || {
                counted.fetch_add(1, Ordering::SeqCst);
                async move { Some(found(outcome)) }
            },
        ));
        (sender, checks)
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_events_is_one_check_once_quiet() {
        let (events, checks) = start(DriftOutcome::Corrected);
        for _ in 0..5 {
            events.unbounded_send(()).expect("the loop listens");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        assert_eq!(checks.load(Ordering::SeqCst), 0, "still within the burst");
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(checks.load(Ordering::SeqCst), 1);
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(checks.load(Ordering::SeqCst), 2, "and one on the tick");
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_correction_is_retried_on_the_tick_not_on_its_own_events() {
        let (events, checks) = start(DriftOutcome::Failed);
        events.unbounded_send(()).expect("the loop listens");
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(checks.load(Ordering::SeqCst), 1);
        for _ in 0..10 {
            events.unbounded_send(()).expect("the loop listens");
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
        assert_eq!(
            checks.load(Ordering::SeqCst),
            1,
            "events after a failure wait"
        );
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert_eq!(checks.load(Ordering::SeqCst), 2, "the tick retries");
    }
}
