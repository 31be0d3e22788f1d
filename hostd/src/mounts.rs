//! Whether the config partition is mounted, read from `/proc/mounts`: hostd decides from it
//! whether what it writes survives a reboot (the console, a crate of its own, asks the same
//! in `console/src/password_file.rs`).

use std::path::Path;

/// Where init mounts the config partition.
pub const CONFIG_MOUNT: &str = "/config";

/// Whether `/proc/mounts` text lists a filesystem mounted at `path`.
pub fn is_mounted(mounts: &str, path: &str) -> bool {
    mounts
        .lines()
        .filter_map(|line| line.split_whitespace().nth(1))
        .any(|mount_point| Path::new(mount_point) == Path::new(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_mount_is_found_in_proc_mounts() {
        let mounts = "proc /proc proc rw 0 0\n/dev/vda2 /config ext4 rw,relatime 0 0\n";
        assert!(is_mounted(mounts, CONFIG_MOUNT));
        assert!(!is_mounted("proc /proc proc rw 0 0\n", CONFIG_MOUNT));
        assert!(!is_mounted(
            "/dev/vda2 /config/x ext4 rw 0 0\n",
            CONFIG_MOUNT
        ));
    }
}
