//! Small statistics: medians across rounds, percentiles of samples.

/// The median of `values` (NaNs dropped); NaN when there are none.
pub fn median(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.into_iter().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 { v[mid] } else { (v[mid - 1] + v[mid]) / 2.0 }
}

/// The `q` quantile (0..=1) of `samples` by nearest rank; NaN when empty.
pub fn percentile(samples: &[f64], q: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    let mut v = samples.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = (q * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// The arithmetic mean; NaN when empty.
pub fn mean(samples: &[f64]) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    samples.iter().sum::<f64>() / samples.len() as f64
}

/// The mean of the samples between the `lo` and `hi` quantiles (a trimmed mean:
/// robust to outliers, and finer than any one quantile of coarse samples).
pub fn trimmed_mean(samples: &[f64], lo: f64, hi: f64) -> f64 {
    let (a, b) = (percentile(samples, lo), percentile(samples, hi));
    let kept: Vec<f64> = samples.iter().copied().filter(|x| *x >= a && *x <= b).collect();
    mean(&kept)
}
