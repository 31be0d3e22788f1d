//! Guests under cloud-hypervisor, nested in the appliance (TCG `-cpu max` gives the
//! appliance AMD SVM; `kvm_amd` gives it /dev/kvm).
//!
//! The guest is the appliance's own kernel with a busybox initramfs built by the harness
//! (`qemu_tests::guest_image`): it prints `CAIRN-GUEST-UP <token>` on its serial console,
//! answers ping on a private vSwitch, and powers off on the ACPI power button.
//!
//! Needs an image built with cloud-hypervisor inside (`CAIRN_CLOUD_HYPERVISOR=… make
//! image`); without it every test prints one `SKIPPED:` line and returns.
#![cfg(feature = "vm-tests")]

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use qemu_tests::appliance::random_token;
use qemu_tests::cli_output::json_output;
use qemu_tests::guest_image::{self, GUEST_INITRAMFS, GUEST_KERNEL};
use qemu_tests::{Appliance, BayDrive, Image, Launch, WorkDir, timeouts};

const BOARD: &str = "qemu-x86_64";
/// The appliance needs room for the host reserve (1.5 GiB on boards up to 15 GiB) plus a
/// guest and its overheads: 128 MiB + 250 MiB + 80 MiB.
const APPLIANCE_MIB: u32 = 3072;
const GUEST_MIB: u32 = 128;
/// Nested under TCG a guest prints its marker 10–17 s after start on an idle host
/// (LAB-FACTS); the shared 2-core host can triple that.
fn marker_timeout() -> Duration {
    timeouts::scaled(Duration::from_secs(90))
}

/// The image under test, or `None` after printing why the test cannot run.
fn image_with_hypervisor(test: &str) -> Result<Option<Image>> {
    let image = Image::from_env()?;
    if let Err(why) = guest_image::hypervisor_in_image(&image, false) {
        guest_image::report_skipped(test, &why);
        return Ok(None);
    }
    Ok(Some(image))
}

fn boot(image: &Image, name: &str) -> Result<Appliance> {
    boot_with(image, name, false)
}

fn boot_with(image: &Image, name: &str, with_disk: bool) -> Result<Appliance> {
    let dir = WorkDir::new(&format!("{name}-files"))?;
    let archive = guest_image::appliance_archive(image, dir.path(), with_disk)?;
    let launch = Launch::direct_kernel(name, BOARD)
        .memory_mib(APPLIANCE_MIB)
        .archive(&archive);
    let mut app = Appliance::launch(image, launch)?;
    app.wait_ready(timeouts::ready_direct())?;
    // The archive is read by QEMU at start; the scratch copy is no longer needed.
    drop(dir);
    Ok(app)
}

/// A private vSwitch `priv` with the appliance at 10.99.0.1 on it.
fn private_vswitch(app: &mut Appliance) -> Result<()> {
    app.shell(
        "printf '%s\\n' 'version = 1' '[[network.vswitches]]' 'name = \"priv\"' > /tmp/net.toml",
    )?;
    app.shell("cairnctl config apply /tmp/net.toml")?;
    app.shell("busybox ip addr add 10.99.0.1/24 dev priv && busybox ip link set priv up")?;
    Ok(())
}

fn show(app: &mut Appliance, guest: &str) -> Result<serde_json::Value> {
    Ok(json_output(
        &app.shell(&format!("cairnctl --json vm show {guest}"))?,
    )?)
}

fn create_guest(app: &mut Appliance, guest: &str, memory_mib: u32, extra: &str) -> Result<String> {
    let token = random_token()[..8].to_string();
    app.shell(&format!(
        "cairnctl vm create {guest} --vcpus 1 --memory {memory_mib}M --kernel {GUEST_KERNEL} --initramfs {GUEST_INITRAMFS} --cmdline 'console=ttyS0 quiet guest.addr=10.99.0.2/24 guest.token={token}' --nic vswitch=priv {extra}"
    ))?;
    Ok(token)
}

/// How many lines of the guest's console log hold `needle`.
fn console_count(app: &mut Appliance, guest: &str, needle: &str) -> Result<usize> {
    let out = app.shell(&format!(
        "grep -c '{needle}' /run/cairn/guests/{guest}/console.log 2>/dev/null || true"
    ))?;
    Ok(out
        .lines()
        .rev()
        .find_map(|line| line.trim().parse().ok())
        .unwrap_or(0))
}

/// Waits until the guest's console has printed `needle` at least `count` times.
fn wait_console(
    app: &mut Appliance,
    guest: &str,
    needle: &str,
    count: usize,
    timeout: Duration,
) -> Result<Duration> {
    let started = Instant::now();
    loop {
        if console_count(app, guest, needle)? >= count {
            return Ok(started.elapsed());
        }
        if started.elapsed() > timeout {
            let log = app
                .shell(&format!("tail -n 30 /run/cairn/guests/{guest}/console.log /run/cairn/guests/{guest}/vmm.log 2>&1 || true"))
                .unwrap_or_default();
            bail!(
                "guest {guest} printed {needle:?} fewer than {count} times within {timeout:?}; its logs:\n{log}"
            );
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Waits for the guest's boot marker (with its `token`) on its console; returns how long.
fn wait_up(app: &mut Appliance, guest: &str, token: &str) -> Result<Duration> {
    wait_console(
        app,
        guest,
        &format!("CAIRN-GUEST-UP {token}"),
        1,
        marker_timeout(),
    )
}

fn wait_state(
    app: &mut Appliance,
    guest: &str,
    state: &str,
    timeout: Duration,
) -> Result<serde_json::Value> {
    let started = Instant::now();
    loop {
        let view = show(app, guest)?;
        if view["state"] == state {
            return Ok(view);
        }
        if started.elapsed() > timeout {
            bail!("guest {guest} is not {state} within {timeout:?}: {view}");
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Proves a kernel+initramfs guest boots under hostd's cloud-hypervisor (marker on its serial console) in its cgroup with its CPU weight, answers ping over a private vSwitch, stops by its ACPI power button, is shown crashed with its log when its cloud-hypervisor is SIGKILLed and comes back by its restart policy, and stops at once with --force.
#[test]
fn guest_boots_pings_stops_crashes_and_restarts() -> Result<()> {
    let Some(image) = image_with_hypervisor("guest_boots_pings_stops_crashes_and_restarts")? else {
        return Ok(());
    };
    let mut app = boot(&image, "guest-life")?;
    app.shell("test -c /dev/kvm")
        .context("no /dev/kvm in the appliance (is kvm_amd loaded?)")?;
    private_vswitch(&mut app)?;
    let token = create_guest(&mut app, "g1", GUEST_MIB, "--cpu-weight 300")?;

    let start = Instant::now();
    app.shell("cairnctl vm start g1")?;
    wait_up(&mut app, "g1", &token)?;
    println!(
        "g1: marker seen {:.1} s after `vm start` was sent (polled every 1 s)",
        start.elapsed().as_secs_f64()
    );
    let view = show(&mut app, "g1")?;
    ensure!(view["state"] == "running", "g1 after boot: {view}");
    let weight = app.shell("cat /sys/fs/cgroup/cairn-guests/g1/cpu.weight")?;
    ensure!(
        weight.trim().ends_with("300"),
        "cpu.weight of g1: {weight:?}"
    );
    ensure!(
        app.shell("cairnctl net tap")?.contains("vm-g1-0"),
        "the guest's tap is not on the vSwitch"
    );

    // Ping over the private vSwitch (the first may wait for the guest's ARP answer).
    let ping = app.shell_status("busybox ping -c 3 -W 3 10.99.0.2")?;
    ensure!(
        ping.status == 0 && ping.output.contains("bytes from 10.99.0.2"),
        "no answer from the guest: {}",
        ping.output
    );

    // The power button: the guest's own init sees it and powers off.
    let stopped = app.shell("cairnctl vm stop g1 --timeout 60")?;
    ensure!(stopped.contains("stopped"), "vm stop said {stopped:?}");
    ensure!(
        console_count(&mut app, "g1", &format!("CAIRN-GUEST-POWEROFF {token}"))? == 1,
        "the guest did not see the power button"
    );
    let log = app.shell("cairnctl log")?;
    ensure!(
        log.contains("guest g1: power button pressed") && !log.contains("g1 did not power off"),
        "the stop was not by the power button: {log}"
    );

    // SIGKILL to cloud-hypervisor: crashed at once, then back by the default policy.
    app.shell("cairnctl vm start g1")?;
    wait_up(&mut app, "g1", &token)?;
    let pid = show(&mut app, "g1")?["pid"]
        .as_u64()
        .context("no pid for a running guest")?;
    app.shell(&format!("kill -9 {pid}"))?;
    let noticed = Instant::now();
    loop {
        let log = app.shell("cairnctl log")?;
        if log.contains("guest g1 crashed: cloud-hypervisor was killed by SIGKILL") {
            break;
        }
        ensure!(
            noticed.elapsed() < Duration::from_secs(20),
            "the crash is not in hostd's log: {log}"
        );
    }
    let view = wait_state(
        &mut app,
        "g1",
        "running",
        timeouts::scaled(Duration::from_secs(30)),
    )?;
    ensure!(
        view["restarts"] == 1 && view["pid"].as_u64() != Some(pid),
        "not restarted by its policy: {view}"
    );
    wait_up(&mut app, "g1", &token)?;

    // Force: no power button, the process is killed.
    let forced = Instant::now();
    app.shell("cairnctl vm stop --force g1")?;
    let view = show(&mut app, "g1")?;
    ensure!(view["state"] == "stopped", "after a forced stop: {view}");
    println!("g1: forced stop in {:.1} s", forced.elapsed().as_secs_f64());
    ensure!(
        console_count(&mut app, "g1", "CAIRN-GUEST-POWEROFF")? == 0,
        "a forced stop pressed the power button"
    );
    app.finish();
    Ok(())
}

/// Proves a start that does not fit is refused by admission with the sum and changes nothing, that capacity shows the headroom, and that bad definitions (nine disks, a missing disk image, an unknown vSwitch, a duplicate name, memory that is not whole MiB), deleting a running guest and a document that drops it are refused.
#[test]
fn admission_and_bad_definitions_are_refused() -> Result<()> {
    let Some(image) = image_with_hypervisor("admission_and_bad_definitions_are_refused")? else {
        return Ok(());
    };
    let mut app = boot(&image, "guest-refused")?;
    private_vswitch(&mut app)?;
    create_guest(&mut app, "big", 2048, "")?;
    let refused = app.shell_status("cairnctl vm start big")?;
    ensure!(refused.status == 2, "a refused start exits 2: {refused:?}");
    ensure!(
        refused
            .output
            .contains(r#"cannot start "big": needs 2.32 GiB (2 GiB + 250 MiB + 1×80 MiB), "#)
            && refused
                .output
                .contains("after the host's 1.50 GiB reserve and 0 running guests"),
        "refusal without the sum: {}",
        refused.output
    );
    ensure!(show(&mut app, "big")?["state"] == "stopped");
    let capacity = app.shell("cairnctl vm capacity --vcpus 1 --memory 128M")?;
    ensure!(
        capacity.contains("more guest(s) of 1 vCPU, 128 MiB"),
        "{capacity}"
    );

    let cases = [
        (
            "--disk path=/dev/x ".repeat(9),
            "guests[1].disks: 9 disks (expected at most 8",
        ),
        (
            "--disk path=/nope.img".into(),
            "big2.disks[0]: /nope.img does not exist",
        ),
        ("--nic vswitch=nope".into(), r#"no vswitch named "nope""#),
    ];
    for (extra, expected) in cases {
        let out = app.shell_status(&format!(
            "cairnctl vm create big2 --vcpus 1 --memory 64M --kernel {GUEST_KERNEL} {extra}"
        ))?;
        ensure!(
            out.status == 2 && out.output.contains(expected),
            "{extra}: {out:?}"
        );
    }
    let out = app.shell_status(&format!(
        "cairnctl vm create big --vcpus 1 --memory 64M --kernel {GUEST_KERNEL}"
    ))?;
    ensure!(
        out.status == 2 && out.output.contains(r#"is already the name of guests[0]"#),
        "{out:?}"
    );
    let out = app.shell_status("cairnctl vm create x --vcpus 1 --memory 1000K --kernel /k")?;
    ensure!(
        out.status == 2 && out.output.contains("not a whole number of MiB"),
        "{out:?}"
    );
    let out = app.shell_status("cairnctl vm create x --vcpus 0 --memory 64M --kernel /k")?;
    ensure!(
        out.status == 2 && out.output.contains("vcpus: 0 is out of range"),
        "{out:?}"
    );
    // Nothing of those was committed.
    let list = app.shell("cairnctl vm list")?;
    ensure!(!list.contains("big2"), "{list}");

    create_guest(&mut app, "small", GUEST_MIB, "")?;
    app.shell("cairnctl vm start small")?;
    let out = app.shell_status("cairnctl vm delete small")?;
    ensure!(
        out.status == 2 && out.output.contains("stop it before deleting it"),
        "{out:?}"
    );
    // Nor can an apply drop it from the document while it runs.
    let out = app.shell_status("cairnctl config apply /tmp/net.toml")?;
    ensure!(
        out.status == 2
            && out
                .output
                .contains("the document drops small while running"),
        "{out:?}"
    );
    app.shell("cairnctl vm stop --force small")?;
    app.shell("cairnctl vm delete small")?;
    ensure!(!app.shell("cairnctl vm list")?.contains("small"));
    app.finish();
    Ok(())
}

/// Proves a reboot of the appliance stops a running guest by its power button before hostd exits (hostd's persistent log says so), that the autostart guest is running again after the boot, and that a poweroff stops it by its power button too.
#[test]
fn reboot_and_poweroff_stop_guests_first_and_autostart_brings_them_back() -> Result<()> {
    let Some(image) = image_with_hypervisor(
        "reboot_and_poweroff_stop_guests_first_and_autostart_brings_them_back",
    )?
    else {
        return Ok(());
    };
    let mut app = boot(&image, "guest-reboot")?;
    private_vswitch(&mut app)?;
    let token = create_guest(&mut app, "auto", GUEST_MIB, "--autostart 1")?;
    app.shell("cairnctl vm start auto")?;
    wait_up(&mut app, "auto", &token)?;

    app.console_command("reboot")?;
    let console = app.console();
    console.wait_for_line("cairn-init: stopped hostd", timeouts::shutdown())?;
    console.wait_for_line("cairn-init: rebooting", timeouts::shutdown())?;
    app.wait_ready(timeouts::ready_direct())?;
    app.console_driven_by_test();

    let log = app.shell("cat /config/logs/hostd.log*")?;
    ensure!(
        log.contains("stopping 1 guest(s) before hostd exits: auto")
            && log.contains("guest auto: power button pressed")
            && log.contains("guest auto stopped (host shutdown)")
            && !log.contains("auto did not power off"),
        "the guest was not stopped by its power button before hostd exited:\n{log}"
    );
    // The private vSwitch's address was by hand; the guest's marker proves the boot.
    let up = wait_up(&mut app, "auto", &token)?;
    println!(
        "auto: marker {:.1} s after the appliance was READY",
        up.as_secs_f64()
    );
    ensure!(show(&mut app, "auto")?["state"] == "running");

    // Poweroff: the same, read from the config partition once QEMU has exited.
    app.console_command("poweroff")?;
    app.vm().wait_for_exit(timeouts::shutdown())?;
    let log = config_file(&mut app, "/logs/hostd.log")?;
    let started = log
        .rfind("autostart: guest auto started")
        .context("no autostart in the second boot's log")?;
    let after = &log[started..];
    ensure!(
        after.contains("guest auto: power button pressed")
            && after.contains("guest auto stopped (host shutdown)")
            && !after.contains("auto did not power off"),
        "poweroff did not stop the guest by its power button first:\n{after}"
    );
    app.finish();
    Ok(())
}

/// A file of the stopped appliance's config partition (debugfs on a copy of it).
fn config_file(app: &mut Appliance, path: &str) -> Result<String> {
    use std::os::unix::fs::FileExt;
    let fs = app.inspect_config_fs()?;
    let raw = std::fs::File::open(&fs.raw_image)?;
    let mut bytes = vec![0u8; usize::try_from(fs.partition.byte_len())?];
    raw.read_exact_at(&mut bytes, fs.partition.byte_offset())?;
    let part = fs.raw_image.with_file_name("config.ext4");
    std::fs::write(&part, bytes)?;
    let output = std::process::Command::new("debugfs")
        .arg("-R")
        .arg(format!("cat {path}"))
        .arg(&part)
        .output()
        .context("debugfs (e2fsprogs) is needed to read the config partition")?;
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Proves a guest without a kernel boots its disk image (a GPT disk whose ESP holds a loader entry) through rust-hypervisor-firmware, always opened as a raw image, and prints its marker.
#[test]
fn guest_boots_from_a_disk_image_through_the_firmware() -> Result<()> {
    let test = "guest_boots_from_a_disk_image_through_the_firmware";
    let image = Image::from_env()?;
    if let Err(why) = guest_image::hypervisor_in_image(&image, true) {
        guest_image::report_skipped(test, &why);
        return Ok(());
    }
    let mut app = boot_with(&image, "guest-firmware", true)?;
    private_vswitch(&mut app)?;
    app.shell(&format!(
        "cairnctl vm create fw --vcpus 1 --memory {GUEST_MIB}M --disk path={} --nic vswitch=priv",
        guest_image::GUEST_DISK
    ))?;
    let start = Instant::now();
    app.shell("cairnctl vm start fw")?;
    // The firmware reads the kernel and initramfs from FAT a sector at a time: under nested
    // TCG on a busy host that alone has taken from 15 s to over 90 s.
    wait_console(
        &mut app,
        "fw",
        "CAIRN-GUEST-UP from-disk",
        1,
        timeouts::scaled(Duration::from_secs(240)),
    )?;
    println!(
        "fw: marker seen {:.1} s after `vm start` (firmware, disk, kernel)",
        start.elapsed().as_secs_f64()
    );
    let ping = app.shell_status("busybox ping -c 3 -W 3 10.99.0.3")?;
    ensure!(
        ping.status == 0,
        "no answer from the firmware-booted guest: {}",
        ping.output
    );
    app.shell("cairnctl vm stop --force fw")?;
    app.finish();
    Ok(())
}

/// Allocated KiB of a file in the appliance (`du -k`: blocks, not the apparent size).
fn allocated_kib(app: &mut Appliance, path: &str) -> Result<u64> {
    let out = app.shell(&format!("sync; du -k {path}"))?;
    out.lines()
        .rev()
        .find_map(|line| line.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("no size in du's output {out:?}"))
}

/// Used KiB of the Btrfs volume mounted at `mount_point`, after committing the running
/// transaction (freed extents count as free only once it commits).
fn volume_used_kib(app: &mut Appliance, mount_point: &str) -> Result<u64> {
    let out = app.shell(&format!(
        "btrfs filesystem sync {mount_point} && btrfs filesystem sync {mount_point} && df -k {mount_point}"
    ))?;
    out.lines()
        .rev()
        .find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields.len() >= 6 && fields[5] == mount_point)
                .then(|| fields[2].parse().ok())
                .flatten()
        })
        .with_context(|| format!("no usage for {mount_point} in df's output {out:?}"))
}

/// Proves space reclamation end to end: a guest's disk is a sparse raw file in its
/// subvolume on a Btrfs volume; 48 MiB the guest writes are allocated in the file and on the
/// volume, and the guest's discard (`blkdiscard`, what fstrim sends) gives both back
/// (cloud-hypervisor punches holes in the file, Btrfs frees the extents).
#[test]
fn discard_in_a_guest_frees_space_on_the_volume() -> Result<()> {
    let Some(image) = image_with_hypervisor("discard_in_a_guest_frees_space_on_the_volume")? else {
        return Ok(());
    };
    let dir = WorkDir::new("guest-discard-files")?;
    let archive = guest_image::appliance_archive(&image, dir.path(), false)?;
    let ssd = BayDrive {
        id: "ssd1".into(),
        bay: 1,
        serial: "SSD1".into(),
        size_mib: 1024,
        hdd: false,
    };
    let launch = Launch::direct_kernel("guest-discard", BOARD)
        .memory_mib(APPLIANCE_MIB)
        .bays(vec![ssd])
        .archive(&archive);
    let mut app = Appliance::launch(&image, launch)?;
    app.wait_ready(timeouts::ready_direct())?;
    drop(dir);

    app.shell(
        "printf '%s\\n' 'version = 1' '[[storage.volumes]]' 'name = \"tank\"' 'drives = [\"/dev/disk/by-id/scsi-0QEMU_QEMU_HARDDISK_SSD1\"]' 'data_profile = \"single\"' 'metadata_profile = \"dup\"' > /tmp/volume.toml",
    )?;
    app.shell("cairnctl config apply /tmp/volume.toml")?;
    let token = random_token()[..8].to_string();
    app.shell(&format!(
        "cairnctl vm create trim --vcpus 1 --memory {GUEST_MIB}M --kernel {GUEST_KERNEL} --initramfs {GUEST_INITRAMFS} --cmdline 'console=ttyS0 quiet guest.token={token} guest.trim=/dev/vda guest.go=/dev/vdb' --volume tank --disk file=data.raw,size=64M --disk file=go.raw,size=1M"
    ))?;
    app.shell("cairnctl vm start trim")?;
    wait_console(
        &mut app,
        "trim",
        &format!("CAIRN-GUEST-FILLED {token}"),
        1,
        marker_timeout(),
    )?;

    let data = "/volume1/vm-trim/data.raw";
    let filled = allocated_kib(&mut app, data)?;
    let used_filled = volume_used_kib(&mut app, "/volume1")?;
    ensure!(
        filled >= 40 * 1024,
        "the guest wrote 48 MiB but its disk file holds only {filled} KiB"
    );

    // The guest waits for this before it discards, so the filled state is measured first.
    app.shell("printf go | dd of=/volume1/vm-trim/go.raw conv=notrunc,fsync 2>/dev/null")?;
    wait_console(
        &mut app,
        "trim",
        &format!("CAIRN-GUEST-TRIMMED {token}"),
        1,
        marker_timeout(),
    )?;
    let trimmed = allocated_kib(&mut app, data)?;
    let used_trimmed = volume_used_kib(&mut app, "/volume1")?;
    println!(
        "disk file: {filled} KiB allocated after the writes, {trimmed} KiB after the discard; volume used: {used_filled} KiB → {used_trimmed} KiB"
    );
    ensure!(
        trimmed <= 4 * 1024,
        "after the guest's discard the disk file still holds {trimmed} KiB (was {filled} KiB): the discard did not reach the file"
    );
    ensure!(
        used_trimmed + 40 * 1024 <= used_filled,
        "the volume's used space went from {used_filled} KiB to only {used_trimmed} KiB after the guest freed 48 MiB"
    );
    app.shell("cairnctl vm stop --force trim")?;
    app.finish();
    Ok(())
}
