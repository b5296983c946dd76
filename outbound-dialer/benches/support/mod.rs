//! What the dialer's benches share: the process's peak memory, numeric settings from the
//! environment, and a number list written the way people write numbers.
// Each bench includes this module and uses only part of it.
#![allow(dead_code, unreachable_pub)]

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

/// Peak resident set size of this process so far (`VmHWM`), in MiB.
pub fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| {
            value
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// The number in the environment variable `name`, or `default`.
pub fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// Writes `n` distinct numbers to `path`, formatted as people write them so normalisation
/// does real work; with `csv`, as a CSV with a `customer` column.
pub fn write_number_list(path: &Path, n: u64, csv: bool) -> std::io::Result<()> {
    let mut out = BufWriter::new(File::create(path)?);
    if csv {
        writeln!(out, "number,customer")?;
    }
    for i in 0..n {
        let (a, b) = (i / 10_000, i % 10_000);
        if csv {
            writeln!(out, "+1 (555) {a:03}-{b:04},customer {i}")?;
        } else {
            writeln!(out, "+1 (555) {a:03}-{b:04}")?;
        }
    }
    out.into_inner()?.sync_all()
}
