//! How the benches read their settings and report their figures: lists of
//! numbers from environment variables, and percentiles of sorted samples.

/// A comma-separated list from the environment variable `name`, or from
/// `default` when it is not set; items that do not parse are left out.
pub fn env_list<T: std::str::FromStr>(name: &str, default: &str) -> Vec<T> {
    std::env::var(name)
        .unwrap_or_else(|_| default.into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

/// The sample at fraction `p` (0 to 1) of `sorted`, which is not empty.
pub fn percentile<T: Copy>(sorted: &[T], p: f64) -> T {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}
