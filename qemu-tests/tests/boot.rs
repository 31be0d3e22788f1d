//! The image's boot acceptance tests: the real `build/image` booted in QEMU.
//!
//! Behind the `vm-tests` feature (`make test` runs
//! `cargo nextest run --profile vm -p qemu-tests --features vm-tests` after `make image`).
//! A missing image fails every test with a message naming `make image`.
//!
//! Failures return `Err` or panic; either way the `Appliance` is dropped without
//! `finish()`, which kills QEMU and prints the console tail, QEMU's stderr and the
//! scratch directory.
#![cfg(feature = "vm-tests")]

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use qemu_tests::appliance::random_token;
use qemu_tests::{Appliance, Image, Launch, Ready, contract, timeouts};

const BOARD: &str = "qemu-x86_64";

/// Boots `board` from the kernel and initramfs with `cairn.img` attached, up to READY.
fn boot_direct(name: &str, board: &str) -> Result<(Appliance, Ready)> {
    let image = Image::from_env()?;
    let mut app = Appliance::launch(&image, Launch::direct_kernel(name, board))?;
    let ready = app.wait_ready(timeouts::ready_direct())?;
    Ok((app, ready))
}

/// Fails unless `/config` is mounted right now: the unmount checks mean nothing otherwise.
fn ensure_config_mounted(app: &mut Appliance) -> Result<()> {
    let mounts = app
        .shell("grep ' /config ' /proc/mounts")
        .context("/config is not mounted in the appliance")?;
    ensure!(mounts.contains(" ext4 "), "/config is not ext4: {mounts:?}");
    Ok(())
}

/// Proves a direct-kernel boot of board qemu-x86_64 reaches READY with positive, ordered timings.
#[test]
fn direct_kernel_boot_reaches_ready_with_ordered_timings() -> Result<()> {
    let (mut app, ready) = boot_direct("direct-boot", BOARD)?;
    ensure!(ready.board == BOARD, "READY names board {:?}", ready.board);
    ready.check_timings()?;
    let transcript = app.console().transcript();
    ensure!(
        transcript.contains(&format!("cairn-init: board {BOARD} (kernel command line)")),
        "init did not say it took the board from the kernel command line"
    );
    let status = app.vm().qmp().query_status()?;
    ensure!(status.running, "QMP reports the VM {:?}", status.status);
    eprintln!(
        "READY board={} init={} modules={} services={} total={}",
        ready.board, ready.init, ready.modules, ready.services, ready.total
    );
    app.finish();
    Ok(())
}

/// Proves the flashable cairn.img boots under OVMF through systemd-boot, which picks slot A by
/// itself and counts the try, and that init marks the slot good once READY.
#[test]
fn uefi_disk_image_boots_slot_a_through_systemd_boot() -> Result<()> {
    let image = Image::from_env()?;
    let mut app = Appliance::launch(&image, Launch::uefi("uefi-boot"))?;
    // No key is ever sent before READY: loader.conf's timeout must choose the entry.
    let ready = app.wait_ready(timeouts::ready_uefi())?;
    ready.check_timings()?;
    // systemd-boot renamed cairn-a+3.conf to cairn-a+2-1.conf before starting the kernel;
    // init drops the counter once the boot has proven itself.
    app.console().wait_for_line(
        "cairn-init: boot slot a marked good (cairn-a+2-1.conf -> cairn-a.conf)",
        Duration::from_secs(30),
    )?;
    let cmdline = app.shell("cat /proc/cmdline")?;
    ensure!(
        cmdline
            .split_whitespace()
            .any(|word| word == "cairn.slot=a"),
        "/proc/cmdline lacks cairn.slot=a: {cmdline:?}"
    );
    app.finish();
    Ok(())
}

/// Proves `poweroff` on the console ends QEMU by itself with the config ext4 cleanly unmounted.
#[test]
fn console_poweroff_ends_qemu_with_every_filesystem_unmounted() -> Result<()> {
    let (mut app, _) = boot_direct("poweroff", BOARD)?;
    ensure_config_mounted(&mut app)?;
    app.console_command("poweroff")?;
    let console = app.console();
    console.wait_for_line(
        "cairn-init: shutdown: poweroff requested by",
        timeouts::shutdown(),
    )?;
    let unmounted_from = console.position();
    console.wait_for_line(contract::ALL_UNMOUNTED, timeouts::shutdown())?;
    let unmounted = contract::unmounted_regex("/config");
    ensure!(
        console
            .slice(unmounted_from, console.position())
            .lines()
            .any(|line| unmounted.is_match(line)),
        "init did not report unmounting /config before 'all filesystems unmounted'"
    );
    let status = app.vm().wait_for_exit(timeouts::shutdown())?;
    ensure!(
        status.success(),
        "QEMU exited with {status} after the guest powered off"
    );

    let fs = app.inspect_config_fs()?;
    let sb = &fs.superblock;
    ensure!(
        !sb.needs_recovery(),
        "config ext4 (partition {}) still needs journal recovery: not unmounted",
        fs.partition.number
    );
    ensure!(
        sb.state_clean(),
        "config ext4 s_state is {:#x}, not clean",
        sb.state
    );
    app.finish();
    Ok(())
}

/// Proves the unmount check can fail: QEMU killed with /config mounted leaves it needing recovery.
#[test]
fn killed_qemu_leaves_config_filesystem_needing_recovery() -> Result<()> {
    let (mut app, _) = boot_direct("killed", BOARD)?;
    ensure_config_mounted(&mut app)?;
    // Flush so the on-disk superblock shows the mounted state, not whatever the first
    // boot's mkfs left before the journal's first commit.
    app.shell("sync")?;
    app.vm().kill()?;
    let fs = app.inspect_config_fs()?;
    ensure!(
        fs.superblock.needs_recovery(),
        "a killed VM left the config ext4 without the needs-recovery flag: the clean-unmount check cannot tell"
    );
    ensure!(!fs.superblock.cleanly_unmounted());
    app.finish();
    Ok(())
}

/// Proves init restarts hostd after SIGKILL, logs the kill and the restart, and the new hostd has a new pid.
#[test]
fn hostd_killed_by_sigkill_is_restarted_and_logged() -> Result<()> {
    let (mut app, _) = boot_direct("hostd-restart", BOARD)?;
    let old = parse_pid(&app.shell("pidof hostd")?)?;

    let before_kill = app.console().position();
    app.shell(&format!("kill -9 {old}"))?;
    // init's lines may arrive before the kill command's end marker: look from before it.
    app.console().seek(before_kill);
    let killed = app
        .console()
        .wait_for_line(contract::service_killed_regex("hostd"), timeouts::console())?;
    ensure!(
        killed.name("pid") == Some(old.to_string().as_str()),
        "init reported another pid: {:?}",
        killed.line()
    );
    ensure!(
        killed.name("signal") == Some("SIGKILL"),
        "{:?}",
        killed.line()
    );
    app.console()
        .wait_for_line(contract::restarting_regex("hostd"), timeouts::console())?;

    // The restart is delayed (`restarting hostd in <ms> ms`): ask until a hostd is back.
    // Each question is a console round trip; the pause keeps the transcript readable.
    let deadline = Instant::now() + timeouts::console();
    let new = loop {
        let answer = app.shell_status("pidof hostd")?;
        if answer.status == 0 {
            break parse_pid(&answer.output)?;
        }
        if Instant::now() >= deadline {
            bail!("hostd did not come back within {:?}", timeouts::console());
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    ensure!(
        new != old,
        "hostd pid {new} did not change after the restart"
    );
    app.finish();
    Ok(())
}

/// The pid `pidof` printed. init and hostd log to the same console, so their lines can land
/// among the command's output: only a line of digits is pidof's.
fn parse_pid(text: &str) -> Result<u32> {
    let words: Vec<&str> = text
        .lines()
        .filter(|line| {
            let line = line.trim();
            !line.is_empty() && line.chars().all(|c| c.is_ascii_digit() || c == ' ')
        })
        .flat_map(str::split_whitespace)
        .collect();
    match words.as_slice() {
        [pid] => pid
            .parse()
            .with_context(|| format!("pidof printed {text:?}, not a pid")),
        _ => bail!("expected exactly one hostd pid, pidof printed {text:?}"),
    }
}

/// Proves a file written to the config partition survives a reboot.
#[test]
fn config_partition_file_survives_reboot() -> Result<()> {
    let (mut app, _) = boot_direct("reboot-persist", BOARD)?;
    let token = random_token();
    app.shell(&format!("echo {token} > /config/marker; sync"))?;
    app.console_command("reboot")?;
    let console = app.console();
    console.wait_for_line("cairn-init: rebooting", timeouts::shutdown())?;
    // The second boot must find its filesystem, not format a blank partition again.
    console.wait_for_line(contract::config_mounted_regex(), timeouts::ready_direct())?;
    app.wait_ready(timeouts::ready_direct())?;
    let read_back = app.shell("cat /config/marker")?;
    ensure!(
        read_back.trim() == token,
        "after reboot /config/marker holds {read_back:?}, expected {token}"
    );
    app.finish();
    Ok(())
}

/// Proves an unknown cairn.board boots as generic and says why.
#[test]
fn unknown_board_boots_as_generic_with_a_message() -> Result<()> {
    let image = Image::from_env()?;
    let mut app = Appliance::launch(
        &image,
        Launch::direct_kernel("unknown-board", "no-such-model"),
    )?;
    app.console().wait_for_line(
        contract::unknown_board_regex("no-such-model"),
        timeouts::ready_direct(),
    )?;
    let ready = app.wait_ready(timeouts::ready_direct())?;
    ensure!(
        ready.board == "generic",
        "READY names board {:?}",
        ready.board
    );
    app.finish();
    Ok(())
}
