//! A guest's lifecycle as an explicit state machine (cloud-hypervisor's `VmState` style):
//! every move the supervisor makes is checked by [`valid_transition`], whose match lists
//! every pair, so a new state cannot slip in without a decision for each.

pub use cairn_api::guests::GuestState;

/// Whether a guest may go from `from` to `to`.
pub fn valid_transition(from: GuestState, to: GuestState) -> bool {
    use GuestState::{Crashed, Paused, Running, Starting, Stopped, Stopping};
    match (from, to) {
        // A start, first or again after a crash (by hand or by the restart policy).
        (Stopped | Crashed, Starting) => true,
        (Starting, Running) => true,
        // The start failed: the process died or the API refused the VM.
        (Starting, Crashed) => true,
        // Stop asked while it was starting, running or paused.
        (Starting | Running | Paused, Stopping) => true,
        (Running, Paused) | (Paused, Running) => true,
        // The process ended as asked…
        (Stopping, Stopped) => true,
        // …or on its own: the guest powered itself off (Stopped) or it died (Crashed).
        (Running | Paused, Stopped | Crashed) => true,
        // A process that died while being stopped ended all the same.
        (Stopping, Crashed) => false,
        // A crashed guest is cleared by a delete or a start, never just marked stopped,
        // so its last log lines stay until someone acts.
        (Crashed, Stopped) => false,
        (Stopped, Stopped | Running | Paused | Stopping | Crashed) => false,
        (Starting, Starting | Stopped | Paused) => false,
        (Running, Starting | Running) => false,
        (Paused, Starting | Paused) => false,
        (Stopping, Starting | Running | Paused | Stopping) => false,
        (Crashed, Running | Paused | Stopping | Crashed) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::GuestState::{self, *};
    use super::valid_transition;

    const ALL: [GuestState; 6] = [Stopped, Starting, Running, Paused, Stopping, Crashed];

    #[test]
    fn the_table() {
        let allowed: Vec<(GuestState, GuestState)> = ALL
            .iter()
            .flat_map(|from| ALL.iter().map(move |to| (*from, *to)))
            .filter(|(from, to)| valid_transition(*from, *to))
            .collect();
        assert_eq!(
            allowed,
            [
                (Stopped, Starting),
                (Starting, Running),
                (Starting, Stopping),
                (Starting, Crashed),
                (Running, Stopped),
                (Running, Paused),
                (Running, Stopping),
                (Running, Crashed),
                (Paused, Stopped),
                (Paused, Running),
                (Paused, Stopping),
                (Paused, Crashed),
                (Stopping, Stopped),
                (Crashed, Starting),
            ]
        );
    }

    #[test]
    fn active_states_hold_a_process() {
        let active: Vec<GuestState> = ALL.into_iter().filter(|s| s.is_active()).collect();
        assert_eq!(active, [Starting, Running, Paused, Stopping]);
    }
}
