//! Reading the CSV files the models learn from and score, with errors that name the file, the
//! line and the column — a release manager feeding a hand-edited file gets told where the typo
//! is, not "invalid float literal".

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use ndarray::Array2;

use crate::ml::spec::{Missing, ModelSpec};

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: csv::Error,
    },
    #[error("{path} has no data rows; it needs a header line and at least one row")]
    Empty { path: PathBuf },
    #[error(
        "{path}: line 1 has no column `{column}` (columns found: {found}); add it or check its spelling"
    )]
    MissingColumn {
        path: PathBuf,
        column: String,
        found: String,
    },
    #[error(
        "{path}: line 1 names column `{column}` twice; which one is meant cannot be told, so rename or remove one"
    )]
    DuplicateColumn { path: PathBuf, column: String },
    #[error(
        "{path}: line {line}, column `{column}`: `{value}` is not a number; write a plain number such as 12.5"
    )]
    NotNumber {
        path: PathBuf,
        line: u64,
        column: String,
        value: String,
    },
    #[error(
        "{path}: line {line}, column `{column}` is empty; fill it, or train with `--missing impute` to use the training median (or most common value) in training and scoring alike"
    )]
    MissingValue {
        path: PathBuf,
        line: u64,
        column: String,
    },
    #[error("{path}: line {line}, column `{column}`: `{value}` is not {expected}")]
    NotLabel {
        path: PathBuf,
        line: u64,
        column: String,
        value: String,
        expected: String,
    },
    #[error(
        "{path}: line {line}, column `{column}`: `{value}` is not a timestamp; write RFC 3339, e.g. 2026-03-01T14:00:00Z"
    )]
    NotTimestamp {
        path: PathBuf,
        line: u64,
        column: String,
        value: String,
    },
    #[error(
        "{path}: every row of `{column}` is {}; training needs deployments that were rolled back and deployments that were kept",
        if *rolled_back { "rolled back" } else { "kept" }
    )]
    SingleClass {
        path: PathBuf,
        column: String,
        rolled_back: bool,
    },
}

impl crate::state::Kind for DataError {
    fn kind(&self) -> crate::state::ErrorKind {
        match self {
            DataError::Read { .. } => crate::state::ErrorKind::Unavailable,
            _ => crate::state::ErrorKind::Invalid,
        }
    }
}

/// A CSV file held as text, so each column can be read with its own error messages.
pub struct Frame {
    path: PathBuf,
    headers: Vec<String>,
    rows: Vec<(u64, csv::StringRecord)>,
}

impl Frame {
    pub fn read(path: &Path) -> Result<Frame, DataError> {
        let mut chunks = FrameChunks::open(path, usize::MAX)?;
        chunks.next().unwrap_or_else(|| {
            Err(DataError::Empty {
                path: path.to_path_buf(),
            })
        })
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    fn column(&self, name: &str) -> Result<usize, DataError> {
        self.headers
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| DataError::MissingColumn {
                path: self.path.clone(),
                column: name.to_string(),
                found: self.headers.join(", "),
            })
    }

    /// The column's values as text.
    pub fn text(&self, name: &str) -> Result<Vec<String>, DataError> {
        let c = self.column(name)?;
        Ok(self
            .rows
            .iter()
            .map(|(_, r)| r.get(c).unwrap_or_default().to_string())
            .collect())
    }

    /// The column's values as finite numbers.
    pub fn numbers(&self, name: &str) -> Result<Vec<f64>, DataError> {
        self.parse(
            name,
            |v| v.parse::<f64>().ok().filter(|x| x.is_finite()),
            |path, line, column, value| DataError::NotNumber {
                path,
                line,
                column,
                value,
            },
        )
    }

    /// The label column of `spec` as rolled back (true) or kept; both must occur.
    pub fn labels(&self, spec: &ModelSpec) -> Result<Vec<bool>, DataError> {
        let c = self.column(&spec.label)?;
        let expected = if spec.positive == "1" {
            "0 or 1 (or false or true)".to_string()
        } else {
            format!(
                "a value (`{}` means rolled back, any other kept)",
                spec.positive
            )
        };
        let labels = self
            .rows
            .iter()
            .map(|(line, r)| {
                let v = r.get(c).unwrap_or_default();
                spec.label_of(v).ok_or_else(|| DataError::NotLabel {
                    path: self.path.clone(),
                    line: *line,
                    column: spec.label.clone(),
                    value: v.to_string(),
                    expected: expected.clone(),
                })
            })
            .collect::<Result<Vec<bool>, DataError>>()?;
        let positives = labels.iter().filter(|&&l| l).count();
        if positives == 0 || positives == labels.len() {
            return Err(DataError::SingleClass {
                path: self.path.clone(),
                column: spec.label.clone(),
                rolled_back: positives > 0,
            });
        }
        Ok(labels)
    }

    pub fn timestamps(&self, name: &str) -> Result<Vec<DateTime<Utc>>, DataError> {
        self.parse(
            name,
            |v| {
                DateTime::parse_from_rfc3339(v)
                    .ok()
                    .map(|t| t.with_timezone(&Utc))
            },
            |path, line, column, value| DataError::NotTimestamp {
                path,
                line,
                column,
                value,
            },
        )
    }

    /// Columns as a row-major matrix, one column per name.
    pub fn matrix(&self, names: &[String]) -> Result<Array2<f64>, DataError> {
        self.matrix_with(names, Missing::Refuse)
    }

    /// [`Frame::matrix`] where an empty cell is refused, or read as NaN to be imputed.
    pub fn matrix_with(
        &self,
        names: &[String],
        missing: Missing,
    ) -> Result<Array2<f64>, DataError> {
        let mut x = Array2::zeros((self.len(), names.len()));
        for (j, name) in names.iter().enumerate() {
            self.check_filled(name, missing)?;
            let values = self.parse(
                name,
                |v| {
                    if v.is_empty() {
                        return Some(f64::NAN);
                    }
                    v.parse::<f64>().ok().filter(|x| x.is_finite())
                },
                |path, line, column, value| DataError::NotNumber {
                    path,
                    line,
                    column,
                    value,
                },
            )?;
            for (i, v) in values.into_iter().enumerate() {
                x[[i, j]] = v;
            }
        }
        Ok(x)
    }

    /// Under [`Missing::Refuse`], the first empty cell of `name` is an error.
    fn check_filled(&self, name: &str, missing: Missing) -> Result<(), DataError> {
        if missing == Missing::Impute {
            return Ok(());
        }
        let c = self.column(name)?;
        match self
            .rows
            .iter()
            .find(|(_, r)| r.get(c).unwrap_or_default().is_empty())
        {
            Some((line, _)) => Err(DataError::MissingValue {
                path: self.path.clone(),
                line: *line,
                column: name.to_string(),
            }),
            None => Ok(()),
        }
    }

    /// Parses every value of a column; `bad` builds the error for the first value `f` rejects.
    fn parse<T>(
        &self,
        name: &str,
        f: impl Fn(&str) -> Option<T>,
        bad: fn(PathBuf, u64, String, String) -> DataError,
    ) -> Result<Vec<T>, DataError> {
        let c = self.column(name)?;
        self.rows
            .iter()
            .map(|(line, r)| {
                let v = r.get(c).unwrap_or_default();
                f(v).ok_or_else(|| bad(self.path.clone(), *line, name.to_string(), v.to_string()))
            })
            .collect()
    }
}

/// A CSV file read a chunk of rows at a time, so a file of any size is processed in
/// constant memory. The first chunk fails with [`DataError::Empty`] when there are no rows.
pub struct FrameChunks<R = std::fs::File> {
    path: PathBuf,
    headers: Vec<String>,
    records: csv::StringRecordsIntoIter<R>,
    rows: usize,
    first: bool,
}

impl FrameChunks {
    pub fn open(path: &Path, rows: usize) -> Result<FrameChunks, DataError> {
        let reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_path(path)
            .map_err(|source| DataError::Read {
                path: path.to_path_buf(),
                source,
            })?;
        FrameChunks::of(path, reader, rows)
    }
}

impl<R: std::io::Read> FrameChunks<R> {
    /// CSV from `input` (a request's body), named `name` in errors.
    pub fn from_reader(name: &str, input: R, rows: usize) -> Result<FrameChunks<R>, DataError> {
        let reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_reader(input);
        FrameChunks::of(Path::new(name), reader, rows)
    }

    fn of(
        path: &Path,
        mut reader: csv::Reader<R>,
        rows: usize,
    ) -> Result<FrameChunks<R>, DataError> {
        let read_err = |source| DataError::Read {
            path: path.to_path_buf(),
            source,
        };
        let headers: Vec<String> = reader
            .headers()
            .map_err(read_err)?
            .iter()
            .map(str::to_string)
            .collect();
        let mut seen = std::collections::HashSet::new();
        if let Some(twice) = headers.iter().find(|h| !seen.insert(h.as_str())) {
            return Err(DataError::DuplicateColumn {
                path: path.to_path_buf(),
                column: twice.clone(),
            });
        }
        Ok(FrameChunks {
            path: path.to_path_buf(),
            headers,
            records: reader.into_records(),
            rows: rows.max(1),
            first: true,
        })
    }
}

impl<R: std::io::Read> Iterator for FrameChunks<R> {
    type Item = Result<Frame, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut rows = Vec::new();
        for record in self.records.by_ref() {
            let record = match record {
                Ok(r) => r,
                Err(source) => {
                    return Some(Err(DataError::Read {
                        path: self.path.clone(),
                        source,
                    }));
                }
            };
            let line = record.position().map_or(0, |p| p.line());
            rows.push((line, record));
            if rows.len() == self.rows {
                break;
            }
        }
        let first = std::mem::replace(&mut self.first, false);
        if rows.is_empty() {
            return first.then(|| {
                Err(DataError::Empty {
                    path: self.path.clone(),
                })
            });
        }
        Some(Ok(Frame {
            path: self.path.clone(),
            headers: self.headers.clone(),
            rows,
        }))
    }
}

/// Deployments read through a [`ModelSpec`] from a history (labelled) or a file of
/// candidates (not).
#[derive(Debug, Clone)]
pub struct Deployments {
    pub ids: Vec<String>,
    /// The spec's `group` column (the service), empty where the file has none.
    pub services: Vec<String>,
    pub timestamps: Vec<DateTime<Utc>>,
    /// One row per deployment, columns in the spec's feature order.
    pub x: Array2<f64>,
    /// Rolled back or kept, when the file is read as labelled.
    pub y: Option<Vec<bool>>,
    /// The file's columns the spec does not read, in file order (reported, not an error).
    pub unused: Vec<String>,
    /// Each categorical column's text, row by row; [`Deployments::encode`] appends them to
    /// `x` as numbers.
    pub categories: Vec<Vec<String>>,
    /// Per row, the categorical values training never saw (`service = payments`), once
    /// encoded.
    pub unseen: Vec<Vec<String>>,
    encoded: bool,
}

impl Deployments {
    /// Reads a file through `spec`; `labelled` requires its label column with both classes
    /// present.
    pub fn load(path: &Path, spec: &ModelSpec, labelled: bool) -> Result<Deployments, DataError> {
        Deployments::from_frame(&Frame::read(path)?, spec, labelled)
    }

    /// Reads an unlabelled file `rows` deployments at a time, for scoring files of any size in
    /// constant memory.
    pub fn chunks<'a>(
        path: &Path,
        spec: &'a ModelSpec,
        rows: usize,
    ) -> Result<impl Iterator<Item = Result<Deployments, DataError>> + 'a, DataError> {
        Ok(FrameChunks::open(path, rows)?
            .map(move |frame| frame.and_then(|f| Deployments::from_frame(&f, spec, false))))
    }

    /// Unlabelled deployments from CSV held in memory (a request's body), named `name` in
    /// errors.
    pub fn from_csv(name: &str, spec: &ModelSpec, csv: &[u8]) -> Result<Deployments, DataError> {
        let mut chunks = FrameChunks::from_reader(name, csv, usize::MAX)?;
        let frame = chunks.next().unwrap_or_else(|| {
            Err(DataError::Empty {
                path: PathBuf::from(name),
            })
        })?;
        Deployments::from_frame(&frame, spec, false)
    }

    /// Unlabelled deployments from JSON objects (one per deployment, keyed by column), checked
    /// as the same rows in CSV would be: row `n` is reported as line `n + 1`.
    pub fn from_json_rows(
        name: &str,
        spec: &ModelSpec,
        rows: &[serde_json::Map<String, serde_json::Value>],
    ) -> Result<Deployments, DataError> {
        let mut columns: Vec<&str> = Vec::new();
        for row in rows {
            for key in row.keys() {
                if !columns.contains(&key.as_str()) {
                    columns.push(key);
                }
            }
        }
        let mut out = csv::Writer::from_writer(Vec::new());
        let write_err = |e| DataError::Read {
            path: PathBuf::from(name),
            source: e,
        };
        out.write_record(&columns).map_err(write_err)?;
        for row in rows {
            let record = columns.iter().map(|c| match row.get(*c) {
                None | Some(serde_json::Value::Null) => String::new(),
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(serde_json::Value::Bool(b)) => u8::from(*b).to_string(),
                Some(other) => other.to_string(),
            });
            out.write_record(record).map_err(write_err)?;
        }
        let text = out
            .into_inner()
            .map_err(|e| write_err(csv::Error::from(e.into_error())))?;
        Deployments::from_csv(name, spec, &text)
    }

    fn from_frame(
        frame: &Frame,
        spec: &ModelSpec,
        labelled: bool,
    ) -> Result<Deployments, DataError> {
        // Missing columns first, all at once in header order, before any value is read: the
        // first error then is the one the file's author most likely needs.
        for name in spec.required(labelled) {
            frame.column(name)?;
        }
        let services = match &spec.group {
            Some(g) if frame.headers.iter().any(|h| h == g) => frame.text(g)?,
            _ => vec![String::new(); frame.len()],
        };
        Ok(Deployments {
            ids: frame.text(&spec.id)?,
            services,
            timestamps: frame.timestamps(&spec.time)?,
            x: frame.matrix_with(&spec.features, spec.missing)?,
            y: if labelled {
                Some(frame.labels(spec)?)
            } else {
                None
            },
            unused: frame
                .headers
                .iter()
                .filter(|h| !spec.reads(h))
                .cloned()
                .collect(),
            categories: spec
                .categorical
                .iter()
                .map(|c| {
                    frame.check_filled(c, spec.missing)?;
                    frame.text(c)
                })
                .collect::<Result<_, _>>()?,
            unseen: vec![Vec::new(); frame.len()],
            encoded: spec.categorical.is_empty(),
        })
    }

    /// Fills the empty cells read under [`Missing::Impute`]: each numeric feature's with
    /// `medians[f]`, each categorical one's with `modes[k]`.
    pub fn impute(&mut self, medians: &[f64], modes: &[String]) {
        for (f, &m) in medians.iter().enumerate().take(self.x.ncols()) {
            self.x
                .column_mut(f)
                .mapv_inplace(|v| if v.is_nan() { m } else { v });
        }
        for (values, mode) in self.categories.iter_mut().zip(modes) {
            for v in values.iter_mut().filter(|v| v.is_empty()) {
                v.clone_from(mode);
            }
        }
    }

    /// Appends one column per categorical feature to `x`, each value replaced by its learned
    /// encoding (a value training never saw gets the overall share and is noted in
    /// `unseen`). Done once; `encodings` are in the spec's categorical order.
    pub fn encode(&mut self, encodings: &[crate::ml::category::CategoryEncoding]) {
        if self.encoded || encodings.is_empty() {
            self.encoded = true;
            return;
        }
        let (rows, numeric) = self.x.dim();
        let mut x = Array2::zeros((rows, numeric + encodings.len()));
        x.slice_mut(ndarray::s![.., ..numeric]).assign(&self.x);
        for (k, (enc, values)) in encodings.iter().zip(&self.categories).enumerate() {
            for (i, v) in values.iter().enumerate() {
                let (code, seen) = enc.encode(v);
                x[[i, numeric + k]] = code;
                if !seen {
                    self.unseen[i].push(format!("{} = {v}", enc.column));
                }
            }
        }
        self.x = x;
        self.encoded = true;
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The rows at `idx`, in that order.
    pub fn select(&self, idx: &[usize]) -> Deployments {
        Deployments {
            ids: idx.iter().map(|&i| self.ids[i].clone()).collect(),
            services: idx.iter().map(|&i| self.services[i].clone()).collect(),
            timestamps: idx.iter().map(|&i| self.timestamps[i]).collect(),
            x: self.x.select(ndarray::Axis(0), idx),
            y: self.y.as_ref().map(|y| idx.iter().map(|&i| y[i]).collect()),
            unused: self.unused.clone(),
            categories: self
                .categories
                .iter()
                .map(|c| idx.iter().map(|&i| c[i].clone()).collect())
                .collect(),
            unseen: idx.iter().map(|&i| self.unseen[i].clone()).collect(),
            encoded: self.encoded,
        }
    }

    /// Labels (empty when unlabelled).
    pub fn labels(&self) -> &[bool] {
        self.y.as_deref().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &tempfile::TempDir, text: &str) -> PathBuf {
        let p = dir.path().join("d.csv");
        std::fs::write(&p, text).unwrap();
        p
    }

    const HEADER: &str = "deployment_id,service,timestamp,latency_ms,error_rate,cpu_pct,memory_pct,change_size,hour,recent_failures,rolled_back\n";

    #[test]
    fn reads_rows_in_feature_order() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            &dir,
            &format!(
                "{HEADER}a,s,2026-01-01T00:00:00Z,100,0.5,40,50,120,14,0,0\nb,s,2026-01-02T00:00:00Z,300,4,90,80,900,2,3,1\n"
            ),
        );
        let d = Deployments::load(&p, &ModelSpec::default(), true).unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(
            d.x.row(1).to_vec(),
            vec![300.0, 4.0, 90.0, 80.0, 900.0, 2.0, 3.0]
        );
        assert_eq!(d.labels(), &[false, true]);
    }

    /// Another team's export: its own column names, a `yes`/`no` label, extra columns.
    #[test]
    fn a_spec_reads_a_teams_own_columns() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            &dir,
            "id,svc,when,latency_ms,error_rate,cpu_usage,memory_usage,owner,rollback\n\
             a,api,2026-01-01T00:00:00Z,120,0.5,40,50,ann,no\n\
             b,web,2026-01-02T00:00:00Z,900,6,95,90,bob,yes\n",
        );
        let spec = ModelSpec {
            features: ["latency_ms", "error_rate", "cpu_usage", "memory_usage"]
                .map(String::from)
                .to_vec(),
            categorical: Vec::new(),
            missing: Missing::Refuse,
            label: "rollback".into(),
            positive: "yes".into(),
            id: "id".into(),
            time: "when".into(),
            group: Some("svc".into()),
        };
        let d = Deployments::load(&p, &spec, true).unwrap();
        assert_eq!(d.x.row(1).to_vec(), vec![900.0, 6.0, 95.0, 90.0]);
        assert_eq!(d.labels(), &[false, true]);
        assert_eq!(d.services, ["api", "web"]);
        assert_eq!(d.unused, ["owner"]);
        // The default spec names the first column it misses, and what the file has.
        let e = Deployments::load(&p, &ModelSpec::default(), true)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no column `deployment_id`") && e.contains("cpu_usage"),
            "{e}"
        );
        // An empty label is named with its line.
        let q = write(
            &dir,
            "id,svc,when,latency_ms,error_rate,cpu_usage,memory_usage,rollback\n\
             a,api,2026-01-01T00:00:00Z,120,0.5,40,50,\n",
        );
        let e = Deployments::load(&q, &spec, true).unwrap_err().to_string();
        assert!(
            e.contains("line 2, column `rollback`") && e.contains("`yes` means rolled back"),
            "{e}"
        );
    }

    #[test]
    fn errors_name_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            &dir,
            &format!(
                "{HEADER}a,s,2026-01-01T00:00:00Z,100,0.5,40,50,120,14,0,0\nb,s,2026-01-02T00:00:00Z,300,high,90,80,900,2,3,1\n"
            ),
        );
        let e = Deployments::load(&p, &ModelSpec::default(), true)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("line 3, column `error_rate`: `high` is not a number"),
            "{e}"
        );
    }
}
