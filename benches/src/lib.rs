//! Benchmarks. Each binary in `src/bin` starts what it measures, prints a table and the command
//! that reproduces it, and stops by itself.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

/// Median of a non-empty sample (upper median for even sizes).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}
