//! Keeps the services running: restart with back-off, readiness, stop order.
//!
//! Each service is a small state machine (never started → running → restarting →
//! running …, and stopped once shutdown begins). Time comes in as an argument, so the
//! tests drive it with made-up instants and a fake spawner.

use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;

use crate::error::Chain;
use crate::readiness::{PipeState, ReadyPipe};
use crate::reaper::describe_exit;
use crate::services::{Readiness, ServiceSpec, Spawner};

/// Restart delays: 250 ms doubling to 30 s, back to 250 ms after a healthy minute.
/// Fast enough that one crash costs little, slow enough that a crash loop does not eat
/// a core or flood the serial console (one line pair per 30 s at worst).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    next: Duration,
}

impl Backoff {
    pub const INITIAL: Duration = Duration::from_millis(250);
    pub const MAX: Duration = Duration::from_secs(30);
    pub const HEALTHY: Duration = Duration::from_secs(60);

    pub fn new() -> Backoff {
        Backoff {
            next: Self::INITIAL,
        }
    }

    /// The delay before restarting a service that ran for `ran_for`.
    pub fn after_exit(&mut self, ran_for: Duration) -> Duration {
        if ran_for >= Self::HEALTHY {
            self.next = Self::INITIAL;
        }
        let delay = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        delay
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    NotStarted,
    Running { pid: Pid, since: Instant },
    Restarting { at: Instant },
    Stopped,
}

#[derive(Debug)]
struct Service {
    spec: &'static ServiceSpec,
    state: State,
    backoff: Backoff,
    ready_pipe: Option<ReadyPipe>,
    /// Said READY at least once this boot: what the READY line waits for.
    was_ready: bool,
}

pub struct Supervisor<S> {
    spawner: S,
    services: Vec<Service>,
    shutting_down: bool,
}

impl<S: Spawner> Supervisor<S> {
    pub fn new(spawner: S, specs: &'static [ServiceSpec]) -> Supervisor<S> {
        Supervisor {
            spawner,
            services: specs
                .iter()
                .map(|spec| Service {
                    spec,
                    state: State::NotStarted,
                    backoff: Backoff::new(),
                    ready_pipe: None,
                    was_ready: false,
                })
                .collect(),
            shutting_down: false,
        }
    }

    pub fn start_all(&mut self, now: Instant) {
        for i in 0..self.services.len() {
            self.start(i, now);
        }
    }

    fn start(&mut self, i: usize, now: Instant) {
        let service = &mut self.services[i];
        match self.spawner.spawn(service.spec) {
            Ok(spawned) => {
                tracing::debug!("started {} (pid {})", service.spec.name, spawned.pid);
                service.state = State::Running {
                    pid: spawned.pid,
                    since: now,
                };
                service.ready_pipe = spawned.ready;
            }
            Err(err) => {
                tracing::warn!("could not start {}: {}", service.spec.name, Chain(&err));
                let delay = service.backoff.after_exit(Duration::ZERO);
                tracing::info!(
                    "restarting {} in {} ms",
                    service.spec.name,
                    delay.as_millis()
                );
                service.state = State::Restarting { at: now + delay };
            }
        }
    }

    /// Starts every service whose back-off has passed.
    pub fn start_due(&mut self, now: Instant) {
        if self.shutting_down {
            return;
        }
        for i in 0..self.services.len() {
            if let State::Restarting { at } = self.services[i].state
                && at <= now
            {
                self.start(i, now);
            }
        }
    }

    /// Handles one reaped child; returns false if it was not a service (an orphan).
    pub fn on_exit(&mut self, pid: Pid, status: WaitStatus, now: Instant) -> bool {
        let Some(service) = self
            .services
            .iter_mut()
            .find(|s| matches!(s.state, State::Running { pid: p, .. } if p == pid))
        else {
            return false;
        };
        let State::Running { since, .. } = service.state else {
            return false;
        };
        service.ready_pipe = None;
        if self.shutting_down {
            service.state = State::Stopped;
            return true;
        }
        let name = service.spec.name;
        match describe_exit(&status) {
            Some(how) => tracing::info!("service {name} (pid {pid}) {how}"),
            // Stopped/continued are not exits; waitpid without WUNTRACED never reports
            // them, but if it did the service is still there.
            None => return true,
        }
        let delay = service
            .backoff
            .after_exit(now.saturating_duration_since(since));
        tracing::info!("restarting {name} in {} ms", delay.as_millis());
        service.state = State::Restarting { at: now + delay };
        true
    }

    /// The earliest pending restart.
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.shutting_down {
            return None;
        }
        self.services
            .iter()
            .filter_map(|s| match s.state {
                State::Restarting { at } => Some(at),
                State::NotStarted | State::Running { .. } | State::Stopped => None,
            })
            .min()
    }

    /// Readiness pipes still open, with their service's index.
    pub fn ready_fds(&self) -> Vec<(usize, BorrowedFd<'_>)> {
        self.services
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.ready_pipe.as_ref().map(|p| (i, p.fd())))
            .collect()
    }

    pub fn on_ready_pipe(&mut self, i: usize) {
        let Some(service) = self.services.get_mut(i) else {
            return;
        };
        let Some(pipe) = service.ready_pipe.as_mut() else {
            return;
        };
        match pipe.read_available() {
            PipeState::Waiting => {}
            PipeState::Ready => {
                service.ready_pipe = None;
                service.was_ready = true;
                if let State::Running { pid, .. } = service.state {
                    tracing::info!("service {} (pid {pid}) is ready", service.spec.name);
                }
            }
            PipeState::Closed => {
                // Its exit (if that is what this is) comes through SIGCHLD.
                service.ready_pipe = None;
                tracing::debug!("{} closed its readiness pipe", service.spec.name);
            }
        }
    }

    /// Notify services that have not said READY yet this boot.
    pub fn not_ready(&self) -> Vec<String> {
        self.services
            .iter()
            .filter(|s| s.spec.readiness == Readiness::Notify && !s.was_ready)
            .map(|s| s.spec.name.to_owned())
            .collect()
    }

    /// From now on exits are not restarted.
    pub fn begin_shutdown(&mut self) {
        self.shutting_down = true;
        for service in &mut self.services {
            if matches!(service.state, State::Restarting { .. } | State::NotStarted) {
                service.state = State::Stopped;
            }
        }
    }

    /// Running services in reverse start order: the order to stop them in.
    pub fn stop_order(&self) -> Vec<(usize, &'static ServiceSpec)> {
        self.services
            .iter()
            .enumerate()
            .rev()
            .map(|(i, s)| (i, s.spec))
            .collect()
    }

    pub fn running_pid(&self, i: usize) -> Option<Pid> {
        match self.services.get(i)?.state {
            State::Running { pid, .. } => Some(pid),
            State::NotStarted | State::Restarting { .. } | State::Stopped => None,
        }
    }

    #[cfg(test)]
    fn state(&self, name: &str) -> Option<State> {
        self.services
            .iter()
            .find(|s| s.spec.name == name)
            .map(|s| s.state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ServiceError;
    use crate::services::{SERVICES, Spawned};
    use nix::sys::signal::Signal;

    #[test]
    fn backoff_schedule() {
        let mut backoff = Backoff::new();
        let quick = Duration::from_secs(1);
        let delays: Vec<u128> = (0..10)
            .map(|_| backoff.after_exit(quick).as_millis())
            .collect();
        assert_eq!(
            delays,
            [250, 500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
        );
        // A minute of healthy running resets it.
        assert_eq!(backoff.after_exit(Duration::from_secs(60)).as_millis(), 250);
        assert_eq!(backoff.after_exit(Duration::from_secs(59)).as_millis(), 500);
    }

    struct FakeSpawner {
        next_pid: i32,
        fail: Vec<&'static str>,
        spawned: Vec<(&'static str, Pid)>,
    }

    impl Spawner for FakeSpawner {
        fn spawn(&mut self, spec: &ServiceSpec) -> Result<Spawned, ServiceError> {
            if self.fail.contains(&spec.name) {
                return Err(ServiceError::Spawn {
                    path: spec.path.into(),
                    source: std::io::Error::from(std::io::ErrorKind::NotFound),
                });
            }
            self.next_pid += 1;
            let pid = Pid::from_raw(self.next_pid);
            self.spawned.push((spec.name, pid));
            Ok(Spawned { pid, ready: None })
        }
    }

    /// hostd and the console: the notify service and the started one these tests are about
    /// (the real table also starts the bus broker first).
    const TABLE: &[ServiceSpec] = &[SERVICES[1], SERVICES[2]];

    fn supervisor(fail: Vec<&'static str>) -> Supervisor<FakeSpawner> {
        Supervisor::new(
            FakeSpawner {
                next_pid: 100,
                fail,
                spawned: Vec::new(),
            },
            TABLE,
        )
    }

    #[test]
    fn broker_starts_before_hostd_and_stops_after_it() {
        let mut sup = Supervisor::new(
            FakeSpawner {
                next_pid: 100,
                fail: vec![],
                spawned: Vec::new(),
            },
            SERVICES,
        );
        sup.start_all(Instant::now());
        sup.begin_shutdown();
        let names: Vec<&str> = sup.stop_order().iter().map(|(_, s)| s.name).collect();
        assert_eq!(names, ["console", "hostd", "dbus"]);
    }

    #[test]
    fn crash_restarts_after_backoff() {
        let t0 = Instant::now();
        let mut sup = supervisor(vec![]);
        sup.start_all(t0);
        let hostd_pid = Pid::from_raw(101);
        assert_eq!(sup.running_pid(0), Some(hostd_pid));

        let t1 = t0 + Duration::from_secs(2);
        assert!(sup.on_exit(
            hostd_pid,
            WaitStatus::Signaled(hostd_pid, Signal::SIGKILL, false),
            t1
        ));
        assert_eq!(
            sup.state("hostd"),
            Some(State::Restarting {
                at: t1 + Duration::from_millis(250)
            })
        );
        assert_eq!(sup.next_deadline(), Some(t1 + Duration::from_millis(250)));
        sup.start_due(t1 + Duration::from_millis(249));
        assert_eq!(sup.running_pid(0), None);
        sup.start_due(t1 + Duration::from_millis(250));
        assert_eq!(sup.running_pid(0), Some(Pid::from_raw(103)));
        assert_eq!(sup.next_deadline(), None);

        // A second quick crash waits twice as long.
        let t2 = t1 + Duration::from_secs(1);
        sup.on_exit(
            Pid::from_raw(103),
            WaitStatus::Exited(Pid::from_raw(103), 1),
            t2,
        );
        assert_eq!(sup.next_deadline(), Some(t2 + Duration::from_millis(500)));
    }

    #[test]
    fn orphans_are_not_services() {
        let t0 = Instant::now();
        let mut sup = supervisor(vec![]);
        sup.start_all(t0);
        let orphan = Pid::from_raw(4242);
        assert!(!sup.on_exit(orphan, WaitStatus::Exited(orphan, 0), t0));
        assert_eq!(sup.next_deadline(), None);
    }

    #[test]
    fn failed_start_is_retried_with_backoff() {
        let t0 = Instant::now();
        let mut sup = supervisor(vec!["console"]);
        sup.start_all(t0);
        assert_eq!(
            sup.state("console"),
            Some(State::Restarting {
                at: t0 + Backoff::INITIAL
            })
        );
        assert!(sup.running_pid(0).is_some());
    }

    #[test]
    fn readiness_counts_notify_services_only() {
        let mut sup = supervisor(vec![]);
        sup.start_all(Instant::now());
        assert_eq!(sup.not_ready(), ["hostd"]);
    }

    #[test]
    fn shutdown_stops_restarts_and_reverses_order() {
        let t0 = Instant::now();
        let mut sup = supervisor(vec!["console"]);
        sup.start_all(t0);
        sup.begin_shutdown();
        assert_eq!(sup.state("console"), Some(State::Stopped));
        assert_eq!(sup.next_deadline(), None);
        let names: Vec<&str> = sup.stop_order().iter().map(|(_, s)| s.name).collect();
        assert_eq!(names, ["console", "hostd"]);
        let hostd = Pid::from_raw(101);
        assert!(sup.on_exit(hostd, WaitStatus::Exited(hostd, 0), t0));
        assert_eq!(sup.state("hostd"), Some(State::Stopped));
        sup.start_due(t0 + Duration::from_secs(100));
        assert_eq!(sup.running_pid(0), None);
    }
}
