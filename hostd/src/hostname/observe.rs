//! Reads the host name the kernel has now.

use std::path::Path;

/// Where the kernel shows the current host name.
pub const PROC_HOSTNAME: &str = "/proc/sys/kernel/hostname";

/// Reads the current host name from a file shaped like `/proc/sys/kernel/hostname`.
pub fn observe(path: &Path) -> std::io::Result<String> {
    Ok(std::fs::read_to_string(path)?.trim_end().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observe_trims_the_kernels_newline() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("hostname");
        std::fs::write(&file, "nas1\n").expect("write");
        assert_eq!(observe(&file).expect("read"), "nas1");
    }
}
