use std::time::Duration;

use board_configs::GuestRules;

use super::*;
use crate::guests::fixtures::{MACHINE, files, spec};
use crate::guests::observe::GuestProcess;
use GuestState::*;

fn limits(rules: &GuestRules) -> Limits<'_> {
    Limits {
        rules,
        machine: MACHINE,
    }
}

fn running(name: &str, memory_mib: u64) -> (String, GuestProcess) {
    (
        name.to_string(),
        GuestProcess {
            state: Running,
            pid: Some(100),
            demand: Some(demand(&spec(name, memory_mib, ""))),
            ..GuestProcess::default()
        },
    )
}

fn in_state(name: &str, state: GuestState) -> Processes {
    Processes::from([(
        name.to_string(),
        GuestProcess {
            state,
            pid: state.is_active().then_some(42),
            ..GuestProcess::default()
        },
    )])
}

#[test]
fn a_start_that_fits_is_planned_with_what_it_was_admitted_with() {
    let rules = GuestRules::default();
    let web = spec("web", 512, "");
    let start = start(&web, files(), &Processes::new(), limits(&rules), false).expect("fits");
    assert_eq!(start.demand, demand(&web));
    assert_eq!(start.to_string(), "start guest web (1 vCPU, 512 MiB)");
}

#[test]
fn a_start_that_does_not_fit_beside_the_running_guests_is_refused_with_the_sum() {
    let rules = GuestRules::default();
    let processes = Processes::from([running("a", 1024)]);
    let refused = start(
        &spec("big", 1024, ""),
        files(),
        &processes,
        limits(&rules),
        false,
    )
    .expect_err("does not fit");
    assert!(matches!(
        refused,
        Refused::Admission(Refusal::Memory { ref name, running: 1, .. }) if name == "big"
    ));
    assert_eq!(
        refused.to_string(),
        r#"cannot start "big": needs 1.32 GiB (1 GiB + 250 MiB + 1×80 MiB), 1.18 GiB free of 4 GiB after the host's 1.50 GiB reserve and 1 running guest"#
    );
    // The guest itself is not counted against itself (a restart after a crash).
    let crashed = Processes::from([(
        "big".to_string(),
        GuestProcess {
            state: Crashed,
            ..GuestProcess::default()
        },
    )]);
    assert!(
        start(
            &spec("big", 1024, ""),
            files(),
            &crashed,
            limits(&rules),
            false
        )
        .is_ok()
    );
}

#[test]
fn a_start_needs_the_guest_stopped_or_crashed_and_hostd_not_stopping() {
    let rules = GuestRules::default();
    let web = spec("web", 64, "");
    for state in [Starting, Running, Paused, Stopping] {
        assert_eq!(
            start(
                &web,
                files(),
                &in_state("web", state),
                limits(&rules),
                false
            ),
            Err(Refused::WrongState {
                name: "web".into(),
                state,
                wanted: "a start needs it stopped or crashed",
            })
        );
    }
    assert_eq!(
        start(&web, files(), &Processes::new(), limits(&rules), true),
        Err(Refused::ShuttingDown)
    );
}

#[test]
fn a_stop_presses_the_button_unless_forced_or_still_starting() {
    let timeout = Duration::from_secs(60);
    let how = |state, force| {
        stop("web", force, timeout, &in_state("web", state)).map(|stop| (stop.pid, stop.how))
    };
    let button = |resume_first| StopHow::PowerButton {
        resume_first,
        timeout,
    };
    assert_eq!(how(Running, false), Ok((Some(42), button(false))));
    assert_eq!(how(Paused, false), Ok((Some(42), button(true))));
    assert_eq!(how(Stopping, false), Ok((Some(42), button(false))));
    assert_eq!(how(Running, true), Ok((Some(42), StopHow::Kill)));
    assert_eq!(how(Starting, false), Ok((Some(42), StopHow::Kill)));
    for state in [Stopped, Crashed] {
        assert_eq!(
            how(state, false),
            Err(Refused::WrongState {
                name: "web".into(),
                state,
                wanted: "there is nothing to stop",
            })
        );
    }
}

#[test]
fn controls_need_their_state() {
    assert_eq!(
        control("web", Control::Pause, &in_state("web", Running)),
        Ok(ControlAction {
            name: "web".into(),
            control: Control::Pause,
            to: Paused,
        })
    );
    assert_eq!(
        control("web", Control::Resume, &in_state("web", Running)),
        Err(Refused::WrongState {
            name: "web".into(),
            state: Running,
            wanted: "it must be paused",
        })
    );
    assert!(control("web", Control::Reboot, &Processes::new()).is_err());
}

#[test]
fn survivors_with_a_vm_are_taken_over_and_unfinished_starts_are_ended() {
    let guests = [
        spec("a", 64, "restart = \"always\""),
        spec("b", 64, ""),
        spec("c", 64, ""),
    ];
    let survivor = |name: &str, pid, vm| Survivor {
        name: name.into(),
        pid,
        vm,
    };
    let actions = adopt(
        &guests,
        &[
            survivor("a", 10, Some(VmState::Running)),
            survivor("b", 11, Some(VmState::Created)),
            survivor("c", 12, Some(VmState::Paused)),
            survivor("gone", 13, Some(VmState::Running)),
        ],
    );
    let texts: Vec<String> = actions.iter().map(ToString::to_string).collect();
    assert_eq!(
        texts,
        [
            "take over guest a (running, pid 10)",
            "end guest b's unfinished start (pid 11, no VM running)",
            "take over guest c (paused, pid 12)",
        ]
    );
    assert!(matches!(
        &actions[0],
        Takeover::Adopt(Adopt { policy: RestartPolicy::Always, demand, .. }) if demand.memory_mib == 64
    ));
}

#[test]
fn autostart_goes_by_order_then_name_with_each_delay() {
    let guests = [
        spec("z", 64, "autostart = { order = 1, delay_s = 5 }"),
        spec("manual", 64, ""),
        spec("b", 64, "autostart = { order = 2, delay_s = 0 }"),
        spec("a", 64, "autostart = { order = 1, delay_s = 0 }"),
    ];
    assert_eq!(
        autostart(&guests),
        [
            ("a".to_string(), Duration::ZERO),
            ("z".to_string(), Duration::from_secs(5)),
            ("b".to_string(), Duration::ZERO),
        ]
    );
}

#[test]
fn what_an_exit_means() {
    use RestartPolicy::{Always, Never, OnCrash};
    let cases = [
        // (was, clean exit, policy, shutting down) → (state, restart)
        (Stopping, false, Always, false, Stopped, false),
        (Starting, false, Always, false, Crashed, false),
        (Running, true, OnCrash, false, Stopped, false),
        (Running, true, Always, false, Stopped, true),
        (Running, false, OnCrash, false, Crashed, true),
        (Paused, false, Always, false, Crashed, true),
        (Running, false, Never, false, Crashed, false),
        (Running, false, OnCrash, true, Crashed, false),
    ];
    for (was, clean, policy, down, state, restart) in cases {
        assert_eq!(
            on_exit(was, clean, policy, down),
            ExitOutcome { state, restart },
            "{was:?} clean={clean} {policy:?} shutting_down={down}"
        );
    }
}

#[test]
fn backoff_doubles_to_a_minute() {
    let seconds: Vec<u64> = (1..=9).map(|n| backoff(n).as_secs()).collect();
    assert_eq!(seconds, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
}
