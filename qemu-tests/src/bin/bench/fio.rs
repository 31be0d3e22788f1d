//! The bench's fio jobs: the white paper's four workloads and the part of fio's JSON report
//! that gives their figures.

use qemu_tests::cli_output::json_output;
use serde::Deserialize;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum FioError {
    #[error("No JSON object in fio's output: {0:?}")]
    NoJson(String),
    #[error("fio's JSON does not have the expected shape")]
    Shape(#[from] serde_json::Error),
    #[error("fio ran {0} jobs, expected one")]
    JobCount(usize),
    #[error("fio's job failed with error {0}")]
    JobFailed(i64),
}

/// The four rows of the white paper's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Workload {
    /// First in each round: it lays the file out afresh at HDD speed (a sequential write
    /// bypasses bcache), so every round starts from the same state.
    SeqWrite64k,
    SeqRead64k,
    RandRead4k,
    RandWrite4k,
}

impl Workload {
    pub(crate) const ROUND: [Workload; 4] = [
        Workload::SeqWrite64k,
        Workload::SeqRead64k,
        Workload::RandRead4k,
        Workload::RandWrite4k,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Workload::SeqRead64k => "seq_read_64k",
            Workload::SeqWrite64k => "seq_write_64k",
            Workload::RandRead4k => "rand_read_4k",
            Workload::RandWrite4k => "rand_write_4k",
        }
    }

    pub(crate) fn label(self) -> &'static str {
        match self {
            Workload::SeqRead64k => "sequential 64K read",
            Workload::SeqWrite64k => "sequential 64K write",
            Workload::RandRead4k => "random 4K read",
            Workload::RandWrite4k => "random 4K write",
        }
    }

    pub(crate) fn fio_args(self) -> &'static str {
        match self {
            Workload::SeqRead64k => "--rw=read --bs=64k",
            Workload::SeqWrite64k => "--rw=write --bs=64k",
            Workload::RandRead4k => "--rw=randread --bs=4k",
            Workload::RandWrite4k => "--rw=randwrite --bs=4k",
        }
    }

    pub(crate) fn unit(self) -> &'static str {
        match self {
            Workload::SeqRead64k | Workload::SeqWrite64k => "MB/s",
            Workload::RandRead4k | Workload::RandWrite4k => "IOPS",
        }
    }

    /// The white paper's DS918+ figures: HDD, then HDD + SSD cache.
    pub(crate) fn white_paper(self) -> (f64, f64) {
        match self {
            Workload::SeqRead64k => (381.23, 399.86),
            Workload::SeqWrite64k => (216.19, 220.8),
            Workload::RandRead4k => (739.46, 973.73),
            Workload::RandWrite4k => (412.92, 11307.89),
        }
    }

    /// The job's figure: MB/s (10^6 bytes, as the white paper) or IOPS.
    pub(crate) fn figure(self, job: &FioJob) -> f64 {
        match self {
            Workload::SeqRead64k => job.read.bw_bytes / 1e6,
            Workload::SeqWrite64k => job.write.bw_bytes / 1e6,
            Workload::RandRead4k => job.read.iops,
            Workload::RandWrite4k => job.write.iops,
        }
    }
}

/// The part of fio's `--output-format=json` the bench reads (fio prints far more).
#[derive(Debug, Deserialize)]
pub(crate) struct FioOutput {
    #[serde(rename = "fio version")]
    pub(crate) version: String,
    pub(crate) jobs: Vec<FioJob>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct FioJob {
    pub(crate) error: i64,
    pub(crate) read: FioDirection,
    pub(crate) write: FioDirection,
}

#[derive(Debug, Deserialize)]
pub(crate) struct FioDirection {
    /// Bytes per second (fio's `bw` is KiB/s).
    pub(crate) bw_bytes: f64,
    pub(crate) iops: f64,
}

/// fio's version and the one job's figure for `workload`.
pub(crate) fn parse_fio(output: &str, workload: Workload) -> Result<(String, f64), FioError> {
    let value = json_output(output).map_err(|e| FioError::NoJson(e.output))?;
    let report: FioOutput = serde_json::from_value(value)?;
    let [job] = report.jobs.as_slice() else {
        return Err(FioError::JobCount(report.jobs.len()));
    };
    if job.error != 0 {
        return Err(FioError::JobFailed(job.error));
    }
    Ok((report.version, workload.figure(job)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// fio 3.39's JSON for one job, cut down to the fields around the ones read.
    const FIO_RANDWRITE: &str = r#"{  "fio version" : "fio-3.39",  "timestamp" : 1764880000,  "jobs" : [    {      "jobname" : "rand_write_4k",      "groupid" : 0,      "error" : 0,      "read" : {        "io_bytes" : 0,        "bw_bytes" : 0,        "iops" : 0.000000      },      "write" : {        "io_bytes" : 123456789,        "bw_bytes" : 8230452,        "iops" : 2009.387755      }    }  ]}"#;

    #[test]
    fn fio_json_gives_the_workloads_figure() {
        let output = format!("[  12.3] a kernel line\n{FIO_RANDWRITE}\n");
        let (version, iops) = parse_fio(&output, Workload::RandWrite4k).expect("parses");
        assert_eq!(version, "fio-3.39");
        assert!((iops - 2009.387755).abs() < 1e-9);
        let (_, mb_s) = parse_fio(&output, Workload::SeqWrite64k).expect("parses");
        assert!((mb_s - 8.230452).abs() < 1e-9);
    }

    #[test]
    fn fio_failures_are_errors() {
        assert!(matches!(
            parse_fio("fio: pid=0, err=5/file:io_u.c", Workload::RandRead4k),
            Err(FioError::NoJson(_))
        ));
        let failed = FIO_RANDWRITE.replace("\"error\" : 0", "\"error\" : 5");
        assert!(matches!(
            parse_fio(&failed, Workload::RandWrite4k),
            Err(FioError::JobFailed(5))
        ));
        assert!(matches!(
            parse_fio(
                r#"{"fio version": "fio-3.39", "jobs": []}"#,
                Workload::RandWrite4k
            ),
            Err(FioError::JobCount(0))
        ));
        assert!(matches!(
            parse_fio(r#"{"jobs": 1}"#, Workload::RandWrite4k),
            Err(FioError::Shape(_))
        ));
    }
}
