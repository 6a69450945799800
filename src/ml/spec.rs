//! Which columns of a deployment history the risk model reads: the features, the label and the
//! value of it that means "rolled back", the id and time columns, and the column shown beside
//! each score. A team's own export keeps its own column names; the shipped simulator's columns
//! are the default. The spec is saved in the model's artifact, so scoring and evaluation read
//! a file the way training did and name what does not fit.

use serde::{Deserialize, Serialize};

/// The columns the risk model reads. Each field left out of a config table is the
/// simulator's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelSpec {
    /// Numeric columns the model learns from, in the order of its feature matrix.
    pub features: Vec<String>,
    /// Text columns the model learns from (service, team, region), after the numeric ones;
    /// see `ml::category` for how they are encoded.
    pub categorical: Vec<String>,
    /// The outcome column (training and evaluation only).
    pub label: String,
    /// The label's value that means the deployment was rolled back; any other value means it
    /// was kept. With the default `1`, `true` is also read as rolled back and `0`/`false` as
    /// kept.
    pub positive: String,
    /// Each deployment's id, shown with its score.
    pub id: String,
    /// When each deployment happened (RFC 3339): the hold-out is the latest share.
    pub time: String,
    /// A column shown beside each score (the service), when the file has it.
    pub group: Option<String>,
    /// What an empty feature cell means.
    pub missing: Missing,
}

/// The policy for empty feature cells, the same in training and scoring.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Missing {
    /// Refuse the file, naming the line and the column.
    #[default]
    Refuse,
    /// Use the training rows' median (numeric) or most common value (categorical).
    Impute,
}

fn default_positive() -> String {
    "1".into()
}

impl Default for ModelSpec {
    /// The columns of `vigil risk simulate`'s files.
    fn default() -> Self {
        ModelSpec {
            features: [
                "latency_ms",
                "error_rate",
                "cpu_pct",
                "memory_pct",
                "change_size",
                "hour",
                "recent_failures",
            ]
            .map(String::from)
            .to_vec(),
            categorical: Vec::new(),
            label: "rolled_back".into(),
            positive: default_positive(),
            id: "deployment_id".into(),
            time: "timestamp".into(),
            group: Some("service".into()),
            missing: Missing::Refuse,
        }
    }
}

/// Why a spec cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error(
        "the model needs at least one feature column (`--features a,b,c` or `[risk] features`)"
    )]
    NoFeatures,
    #[error("feature `{0}` is listed twice")]
    Repeated(String),
    #[error("`{column}` is the {role} column and cannot also be a feature")]
    Overlap { column: String, role: &'static str },
    #[error("the {role} column has no name")]
    Unnamed { role: &'static str },
    #[error("the label's positive value is empty; give the value that means \"rolled back\"")]
    NoPositive,
}

impl crate::state::Kind for SpecError {
    fn kind(&self) -> crate::state::ErrorKind {
        crate::state::ErrorKind::Invalid
    }
}

impl ModelSpec {
    /// Refuses a spec that would read a column twice or read nothing.
    pub fn check(&self) -> Result<(), SpecError> {
        if self.features.is_empty() {
            return Err(SpecError::NoFeatures);
        }
        for (role, column) in [
            ("label", &self.label),
            ("id", &self.id),
            ("time", &self.time),
        ] {
            if column.trim().is_empty() {
                return Err(SpecError::Unnamed { role });
            }
            if self.features.contains(column) || self.categorical.contains(column) {
                return Err(SpecError::Overlap {
                    column: column.clone(),
                    role,
                });
            }
        }
        if self.positive.trim().is_empty() {
            return Err(SpecError::NoPositive);
        }
        let mut seen = std::collections::HashSet::new();
        for f in self.features.iter().chain(&self.categorical) {
            if f.trim().is_empty() {
                return Err(SpecError::Unnamed { role: "feature" });
            }
            if !seen.insert(f) {
                return Err(SpecError::Repeated(f.clone()));
            }
        }
        Ok(())
    }

    /// Reads a label value: `Some(true)` for the positive value, `Some(false)` for another
    /// one, `None` for an empty cell.
    pub fn label_of(&self, value: &str) -> Option<bool> {
        let v = value.trim();
        if v.is_empty() {
            return None;
        }
        if self.positive == "1" {
            return match v {
                "1" | "true" => Some(true),
                "0" | "false" => Some(false),
                _ => None,
            };
        }
        Some(v == self.positive)
    }

    /// The columns a file must have to be read: id, time, the features, and the label when
    /// it is labelled.
    pub fn required(&self, labelled: bool) -> Vec<&str> {
        [self.id.as_str(), self.time.as_str()]
            .into_iter()
            .chain(self.features.iter().map(String::as_str))
            .chain(self.categorical.iter().map(String::as_str))
            .chain(labelled.then_some(self.label.as_str()))
            .collect()
    }

    /// Every feature, numeric then categorical: the columns of the model's matrix.
    pub fn all_features(&self) -> Vec<String> {
        self.features
            .iter()
            .chain(&self.categorical)
            .cloned()
            .collect()
    }

    /// Whether the spec reads `column` (for naming a file's unused columns).
    pub fn reads(&self, column: &str) -> bool {
        column == self.id
            || column == self.time
            || column == self.label
            || self.group.as_deref() == Some(column)
            || self.features.iter().any(|f| f == column)
            || self.categorical.iter().any(|f| f == column)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_reads_each_column_once_and_labels_by_its_positive_value() {
        assert_eq!(ModelSpec::default().check(), Ok(()));
        let mut s = ModelSpec::default();
        s.features.push("hour".into());
        assert_eq!(s.check(), Err(SpecError::Repeated("hour".into())));
        let mut s = ModelSpec::default();
        s.features.push("rolled_back".into());
        assert!(matches!(
            s.check(),
            Err(SpecError::Overlap { role: "label", .. })
        ));
        let mut s = ModelSpec::default();
        s.features.clear();
        assert_eq!(s.check(), Err(SpecError::NoFeatures));

        let d = ModelSpec::default();
        assert_eq!(
            ["1", "true", "0", "false", "", "yes"].map(|v| d.label_of(v)),
            [Some(true), Some(true), Some(false), Some(false), None, None]
        );
        let yes = ModelSpec {
            positive: "yes".into(),
            ..ModelSpec::default()
        };
        assert_eq!(
            ["yes", "no", "", "1"].map(|v| yes.label_of(v)),
            [Some(true), Some(false), None, Some(false)]
        );
    }
}
