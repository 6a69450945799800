//! Features quantised into at most 256 ordered bins, once per training set.
//!
//! Split finding then costs one pass over a node's rows per candidate feature (a histogram of
//! bin codes) instead of a scan of every row for every threshold, which is what made
//! linfa-trees 19× slower than scikit-learn. A feature with at most `max_bins` distinct values
//! (hour, recent failures) keeps every possible split; one with more is cut at quantiles, as
//! LightGBM and scikit-learn's `HistGradientBoosting` do.

use ndarray::ArrayView2;

/// The largest number of bins a feature can have (codes are `u8`).
pub const MAX_BINS: usize = 256;

/// Bin codes of a training set, column by column.
#[derive(Debug, Clone)]
pub struct Binned {
    /// `codes[f][i]`: the bin of row `i` in feature `f`.
    pub codes: Vec<Vec<u8>>,
    /// `cuts[f][b]`: a value `x` is in bin `b` or lower exactly when `x <= cuts[f][b]`. A
    /// feature has `cuts[f].len() + 1` bins.
    pub cuts: Vec<Vec<f64>>,
}

impl Binned {
    pub fn new(x: ArrayView2<f64>, max_bins: usize) -> Binned {
        let max_bins = max_bins.clamp(2, MAX_BINS);
        let (codes, cuts) = x
            .columns()
            .into_iter()
            .map(|col| {
                let values: Vec<f64> = col.to_vec();
                let cuts = cut_points(&values, max_bins);
                let codes = values.iter().map(|&v| code(&cuts, v)).collect();
                (codes, cuts)
            })
            .unzip();
        Binned { codes, cuts }
    }

    pub fn rows(&self) -> usize {
        self.codes.first().map_or(0, Vec::len)
    }

    pub fn features(&self) -> usize {
        self.codes.len()
    }
}

/// The bin of `v`: how many cut points lie strictly below it.
fn code(cuts: &[f64], v: f64) -> u8 {
    // At most MAX_BINS - 1 cuts, so the count fits a u8.
    cuts.partition_point(|&c| c < v) as u8
}

/// Midpoints between neighbouring distinct values when there are few enough of them; otherwise
/// values at evenly spaced quantiles.
fn cut_points(values: &[f64], max_bins: usize) -> Vec<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mut distinct = sorted.clone();
    distinct.dedup();
    if distinct.len() <= max_bins {
        return distinct.windows(2).map(|w| (w[0] + w[1]) / 2.0).collect();
    }
    let n = sorted.len();
    let mut cuts: Vec<f64> = (1..max_bins).map(|k| sorted[k * n / max_bins]).collect();
    cuts.dedup();
    // A cut at the maximum would leave its upper bin empty.
    if cuts.last() == distinct.last() {
        cuts.pop();
    }
    cuts
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn few_distinct_values_keep_every_split_at_midpoints() {
        let x = array![[1.0], [3.0], [3.0], [7.0]];
        let b = Binned::new(x.view(), 256);
        assert_eq!(b.cuts[0], vec![2.0, 5.0]);
        assert_eq!(b.codes[0], vec![0, 1, 1, 2]);
    }

    #[test]
    fn many_values_are_cut_at_quantiles_and_codes_agree_with_cuts() {
        let values: Vec<f64> = (0..1000).map(|i| f64::from(i) * 0.5).collect();
        let x = ndarray::Array2::from_shape_vec((1000, 1), values.clone()).unwrap();
        let b = Binned::new(x.view(), 4);
        assert_eq!(b.cuts[0], vec![125.0, 250.0, 375.0]);
        for (v, &c) in values.iter().zip(&b.codes[0]) {
            let c = usize::from(c);
            if c < b.cuts[0].len() {
                assert!(*v <= b.cuts[0][c]);
            }
            if c > 0 {
                assert!(*v > b.cuts[0][c - 1]);
            }
        }
    }
}
