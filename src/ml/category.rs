//! Categorical features (service, team, region) for the rollback-risk forest: each level is
//! replaced by its share of rolled-back deployments in the training rows, shrunk toward the
//! overall share by [`SMOOTHING`] pseudo-deployments so a level seen twice does not look
//! certain. Ordering levels by that share is what makes one split of a tree on the encoded
//! column as good as the best split of the levels into two groups (for a yes/no outcome), so
//! the forest needs no one-hot columns. A level never seen in training is encoded as the
//! overall share — the model knows nothing about it — and reported with the score.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Pseudo-deployments at the overall share added to every level.
pub const SMOOTHING: f64 = 10.0;

/// One categorical column's learned encoding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoryEncoding {
    pub column: String,
    /// Each level seen in training and its smoothed share of rollbacks.
    pub levels: BTreeMap<String, f64>,
    /// The overall share: the value of a level never seen.
    pub prior: f64,
    /// The most common level in training: an empty cell's under `missing = "impute"`.
    #[serde(default)]
    pub mode: String,
}

impl CategoryEncoding {
    /// Learns the encoding of `column` from its `values` and the rows' outcomes.
    pub fn fit(column: &str, values: &[String], rolled_back: &[bool]) -> CategoryEncoding {
        let n = values.len().max(1) as f64;
        let prior = rolled_back.iter().filter(|&&b| b).count() as f64 / n;
        let mut counts: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
        for (v, &b) in values.iter().zip(rolled_back) {
            let c = counts.entry(v.as_str()).or_default();
            c.0 += 1.0;
            c.1 += f64::from(u8::from(b));
        }
        CategoryEncoding {
            mode: most_common(values.iter().map(String::as_str)),
            column: column.to_string(),
            levels: counts
                .into_iter()
                .map(|(level, (rows, pos))| {
                    (
                        level.to_string(),
                        (pos + SMOOTHING * prior) / (rows + SMOOTHING),
                    )
                })
                .collect(),
            prior,
        }
    }

    /// The encoded value of `level`, and whether training saw it.
    pub fn encode(&self, level: &str) -> (f64, bool) {
        match self.levels.get(level) {
            Some(&v) => (v, true),
            None => (self.prior, false),
        }
    }
}

/// The most common non-empty value (the first in order among equals); empty when none.
pub fn most_common<'a>(values: impl IntoIterator<Item = &'a str>) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for v in values.into_iter().filter(|v| !v.is_empty()) {
        *counts.entry(v).or_default() += 1;
    }
    counts
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0)))
        .map(|(level, _)| level.to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_ordered_by_their_share_of_rollbacks_and_new_ones_get_the_overall_share() {
        let values: Vec<String> = ["api", "api", "api", "web", "web", "db"]
            .map(String::from)
            .to_vec();
        let y = [true, true, false, false, false, true];
        let e = CategoryEncoding::fit("service", &values, &y);
        assert_eq!(e.prior, 0.5);
        let (api, seen) = e.encode("api");
        assert!(seen);
        let (web, _) = e.encode("web");
        // api: (2 + 5) / 13, web: (0 + 5) / 12 — shrunk toward 0.5, api above web.
        assert!((api - 7.0 / 13.0).abs() < 1e-12 && (web - 5.0 / 12.0).abs() < 1e-12);
        assert!(api > web);
        assert_eq!(e.encode("payments"), (0.5, false));
        assert_eq!(e.mode, "api");
    }
}
