//! What a `cairnctl --json …` command printed, picked out of a console transcript.
//!
//! The console also carries hostd's warnings and the kernel's messages, and a kernel
//! message starts with `[` as a JSON array does: the command's output is the last line that
//! parses as a JSON object or array, not merely the last that starts like one.

use thiserror::Error;

#[derive(Debug, Error)]
#[error("No line of the output is a JSON object or array: {output:?}")]
pub struct NoJson {
    pub output: String,
}

pub fn json_output(output: &str) -> Result<serde_json::Value, NoJson> {
    output
        .lines()
        .rev()
        .map(str::trim)
        .filter(|line| line.starts_with('{') || line.starts_with('['))
        .find_map(|line| {
            serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .filter(|value| value.is_object() || value.is_array())
        })
        .ok_or_else(|| NoJson {
            output: output.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_json_line_wins_over_kernel_messages_and_warnings() {
        let output = "{\"old\": 1}\n[{\"name\": \"tank\"}]\r\n[   12.345678] sd 0:0:1:0: [sdb] Attached SCSI disk\nWARN hostd: something\n";
        assert_eq!(
            json_output(output).expect("found"),
            serde_json::json!([{ "name": "tank" }])
        );
        assert_eq!(
            json_output("status: ok\n{\"board\": \"qemu-x86_64\"}").expect("found")["board"],
            "qemu-x86_64"
        );
        assert!(json_output("[    1.0] only the kernel\nno json").is_err());
    }
}
