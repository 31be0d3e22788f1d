//! The lease as `cairnctl net address` shows it: wall-clock times, computed from the
//! state machine's monotonic ones (pure, so the conversion is tested).

use std::time::Instant;

use super::machine::Client;
use crate::utc;

pub use cairn_api::net::DhcpView;

/// `instant` as seconds since 1970, given the same moment on both clocks.
fn wall(instant: Instant, now: Instant, now_wall_s: u64) -> u64 {
    if instant >= now {
        now_wall_s.saturating_add(instant.duration_since(now).as_secs())
    } else {
        now_wall_s.saturating_sub(now.duration_since(instant).as_secs())
    }
}

pub fn view(interface: &str, client: Option<&Client>, now: Instant, now_wall_s: u64) -> DhcpView {
    let at = |instant| Some(utc::rfc3339(wall(instant, now, now_wall_s)));
    let lease = client.and_then(Client::lease);
    DhcpView {
        interface: interface.to_string(),
        // No client yet: the interface or its socket is not there (retried).
        state: client
            .map_or("waiting for the interface", |c| c.phase().as_str())
            .to_string(),
        address: lease.map(|l| format!("{}/{}", l.address, l.prefix)),
        server: lease.map(|l| l.server.to_string()),
        router: lease
            .and_then(|l| l.routers.first())
            .map(ToString::to_string),
        dns: lease.map_or_else(Vec::new, |l| {
            l.dns.iter().map(ToString::to_string).collect()
        }),
        obtained: lease.and_then(|l| at(l.obtained)),
        renews_at: lease.and_then(|l| at(l.renews_at())),
        expires: lease.and_then(|l| at(l.expires_at())),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn monotonic_times_become_utc_around_now() {
        let now = Instant::now();
        assert_eq!(wall(now + Duration::from_secs(60), now, 1000), 1060);
        assert_eq!(wall(now - Duration::from_secs(10), now, 1000), 990);
        let waiting = view("vmnet", None, now, 0);
        assert_eq!(waiting.state, "waiting for the interface");
        assert!(!waiting.has_lease());
        assert_eq!(
            serde_json::to_value(&waiting).expect("json"),
            serde_json::json!({"interface": "vmnet", "state": "waiting for the interface"})
        );
    }
}
