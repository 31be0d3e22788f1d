//! The guest figures of `make bench` (when the image has cloud-hypervisor): the time from
//! `cairnctl vm start` to the guest's marker on its serial console against cloud-hypervisor
//! started by hand in the same appliance with the same kernel, initramfs, command line,
//! size and tap (the ratio is hostd's overhead), and the host memory one running guest
//! costs (cloud-hypervisor's resident memory plus hostd's growth) against the white
//! paper's reservation (its memory + 250 MiB + 80 MiB per vCPU).
//!
//! Both spans are measured inside the appliance with the same loop (`/proc/uptime` before
//! the command, then `grep` for the marker every 20 ms), so the polling costs both alike.
//! The loop has its own deadline ([`marker_timeout`], the guests VM test's 90 s): a start
//! is not cut off by the 60 s console round trip (nested under TCG a start takes 15–30 s
//! on an idle host and more under load; with `quiet` the guest prints nothing between its
//! first kernel lines and the marker, so a slow start looks like a silent one), and a start
//! that really stays silent is reported with the guest's console, the VMM's log and the
//! appliance's kernel messages instead of a bare console timeout.

use qemu_tests::guest_image::{self, GUEST_INITRAMFS, GUEST_KERNEL};
use std::time::Duration;

use qemu_tests::{Appliance, Image, Launch, WorkDir, timeouts};

/// The guest's size: one vCPU, and memory the appliance (3 GiB) admits.
const VCPUS: u32 = 1;
const MEMORY_MIB: u32 = 128;
const CMDLINE: &str = "console=ttyS0 quiet guest.addr=10.99.0.2/24 guest.token=bench";

#[derive(Debug, Default)]
pub struct GuestSample {
    pub hostd_start_to_marker_s: Vec<f64>,
    pub by_hand_start_to_marker_s: Vec<f64>,
    pub cloud_hypervisor_rss_kib: f64,
    pub hostd_growth_kib: f64,
    /// memory + 250 MiB + 80 MiB × vCPUs, in KiB.
    pub white_paper_kib: f64,
}

/// How long a start may take to print its marker: the guests VM test's wait.
fn marker_timeout() -> Duration {
    timeouts::scaled(Duration::from_secs(90))
}

/// The shell loop that waits for the marker in `log` (after `s` was set to the start's
/// uptime): at most [`marker_timeout`], then a `SPAN` line, or `SILENT` when it never came.
fn wait_marker(log: &str) -> String {
    let polls = marker_timeout().as_millis() / 20;
    format!(
        "n=0; while ! grep -q CAIRN-GUEST-UP {log} 2>/dev/null; do [ $n -ge {polls} ] && break; usleep 20000; n=$((n+1)); done; e=$(cut -d' ' -f1 /proc/uptime); if grep -q CAIRN-GUEST-UP {log} 2>/dev/null; then echo SPAN $s $e; else echo SILENT $s $e; fi"
    )
}

/// Runs a start command followed by [`wait_marker`]; a start without a marker is an error
/// that carries what the guest, its VMM and the appliance's kernel said.
fn timed_start(
    app: &mut Appliance,
    what: &str,
    start: &str,
    log: &str,
    vmm_log: &str,
) -> Result<f64, String> {
    let out = app
        .shell_within(
            &format!(
                "s=$(cut -d' ' -f1 /proc/uptime); {start} {}",
                wait_marker(log)
            ),
            marker_timeout() + timeouts::console(),
        )
        .map_err(|e| format!("{what}: {e}"))?;
    if out.lines().any(|line| line.starts_with("SILENT ")) {
        let context = app
            .shell(&format!(
                "tail -n 20 {log} {vmm_log} 2>&1; dmesg | grep -E 'kvm|Oops|BUG' | tail -n 10"
            ))
            .unwrap_or_default();
        return Err(format!(
            "{what}: no CAIRN-GUEST-UP within {:?}; the guest's console, the VMM's log and the appliance's kvm lines:\n{context}",
            marker_timeout()
        ));
    }
    span(&out)
}

fn span(text: &str) -> Result<f64, String> {
    let line = text
        .lines()
        .rev()
        .find(|line| line.starts_with("SPAN "))
        .ok_or_else(|| format!("no SPAN line in {text:?}"))?;
    let mut parts = line.split_whitespace().skip(1).map(str::parse::<f64>);
    match (parts.next(), parts.next()) {
        (Some(Ok(start)), Some(Ok(end))) => Ok(end - start),
        _ => Err(format!("bad SPAN line {line:?}")),
    }
}

fn rss_kib(app: &mut Appliance, pid: &str) -> Result<f64, String> {
    let text = app
        .shell(&format!("grep VmRSS /proc/{pid}/status"))
        .map_err(|e| e.to_string())?;
    super::parse_vm_rss_kib(&text)
        .map(|kib| kib as f64)
        .ok_or_else(|| format!("no VmRSS in {text:?}"))
}

/// `runs` starts each way; `None` when the image has no cloud-hypervisor.
pub fn measure(image: &Image, runs: u32) -> Result<Option<GuestSample>, String> {
    if let Err(why) = guest_image::hypervisor_in_image(image, false) {
        eprintln!("guests: not measured: {why}");
        return Ok(None);
    }
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let dir = WorkDir::new("bench-guest-files").map_err(|e| err(&e))?;
    let archive = guest_image::appliance_archive(image, dir.path(), false).map_err(|e| err(&e))?;
    let launch = Launch::direct_kernel("bench-guest", "qemu-x86_64")
        .memory_mib(3072)
        .archive(&archive);
    let mut app = Appliance::launch(image, launch).map_err(|e| err(&e))?;
    app.wait_ready(timeouts::ready_direct())
        .map_err(|e| err(&e))?;
    let mut shell = |command: &str| app.shell(command).map_err(|e| err(&e));
    shell(
        "printf '%s\\n' 'version = 1' '[[network.vswitches]]' 'name = \"priv\"' > /tmp/net.toml",
    )?;
    shell("cairnctl config apply /tmp/net.toml")?;
    shell(&format!(
        "cairnctl vm create gb --vcpus {VCPUS} --memory {MEMORY_MIB}M --kernel {GUEST_KERNEL} --initramfs {GUEST_INITRAMFS} --cmdline '{CMDLINE}' --nic vswitch=priv,mac=52:54:00:be:0c:01"
    ))?;
    let hostd_before = {
        let pid = shell("pidof hostd")?;
        rss_kib(&mut app, pid.trim())?
    };
    let mut sample = GuestSample {
        white_paper_kib: f64::from(MEMORY_MIB + 250 + 80 * VCPUS) * 1024.0,
        ..GuestSample::default()
    };
    for run in 1..=runs {
        let took = timed_start(
            &mut app,
            &format!("guest run {run}/{runs}, vm start"),
            "cairnctl vm start gb >/dev/null &&",
            "/run/cairn/guests/gb/console.log",
            "/run/cairn/guests/gb/vmm.log",
        )?;
        sample.hostd_start_to_marker_s.push(took);
        let mut shell = |command: &str| app.shell(command).map_err(|e| err(&e));
        if run == 1 {
            let view = shell("cairnctl --json vm show gb")?;
            let pid = view
                .lines()
                .rev()
                .find(|l| l.starts_with('{'))
                .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .and_then(|v| v["pid"].as_u64())
                .ok_or_else(|| format!("no pid in {view:?}"))?;
            sample.cloud_hypervisor_rss_kib = rss_kib(&mut app, &pid.to_string())?;
            let hostd_pid = app.shell("pidof hostd").map_err(|e| err(&e))?;
            sample.hostd_growth_kib = rss_kib(&mut app, hostd_pid.trim())? - hostd_before;
        }
        let mut shell = |command: &str| app.shell(command).map_err(|e| err(&e));
        shell("cairnctl vm stop --force gb >/dev/null")?;
        shell("rm -f /tmp/hand.log /tmp/hand.pid")?;
        let by_hand = timed_start(
            &mut app,
            &format!("guest run {run}/{runs}, by hand"),
            &format!(
                "/usr/libexec/cairn/cloud-hypervisor --cpus boot={VCPUS} --memory size={MEMORY_MIB}M --kernel {GUEST_KERNEL} --initramfs {GUEST_INITRAMFS} --cmdline '{CMDLINE}' --serial file=/tmp/hand.log --console off --net tap=vm-gb-0,mac=52:54:00:be:0c:01 >/tmp/hand.out 2>&1 & echo $! >/tmp/hand.pid;"
            ),
            "/tmp/hand.log",
            "/tmp/hand.out",
        );
        // Stopped whether or not it printed its marker.
        app.shell("p=$(cat /tmp/hand.pid) && kill -9 $p; wait $p 2>/dev/null; true")
            .map_err(|e| err(&e))?;
        sample.by_hand_start_to_marker_s.push(by_hand?);
        eprintln!(
            "guest run {run}/{runs}: vm start → marker {:.2} s, by hand {:.2} s",
            sample.hostd_start_to_marker_s[sample.hostd_start_to_marker_s.len() - 1],
            sample.by_hand_start_to_marker_s[sample.by_hand_start_to_marker_s.len() - 1]
        );
    }
    app.finish();
    Ok(Some(sample))
}

#[cfg(test)]
mod tests {
    use super::span;

    #[test]
    fn the_marker_wait_has_a_deadline_and_says_when_it_passed() {
        let script = super::wait_marker("/tmp/g.log");
        assert!(script.contains("] && break; usleep 20000"), "{script}");
        assert!(script.contains("echo SILENT $s $e"), "{script}");
        assert!(script.contains("echo SPAN $s $e"), "{script}");
    }

    #[test]
    fn spans() {
        assert_eq!(span("x\nSPAN 10.00 12.50\n"), Ok(2.5));
        assert!(span("nothing").is_err());
    }
}
