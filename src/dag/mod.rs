//! DAG files: the TOML format, loading a folder, and every check that can be made before a
//! run exists. Nothing here touches the database.

mod diagnostic;
pub mod graph;
mod params;
mod parse;
mod spec;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use diagnostic::{Diagnostic, FileErrors};
pub use graph::{Cycle, DagGraph};
pub use params::{ConfError, resolve_params};
pub use parse::{check_id, parse_cron, parse_dag};
pub use spec::{Backoff, Dag, NotifySpec, RetryPolicy, Schedule, TaskSpec, TriggerRule};

use crate::task::Registry;

/// The DAGs of a folder (or a list of files): the good ones, and the errors of the others.
#[derive(Debug, Default)]
pub struct DagSet {
    pub dags: BTreeMap<String, Arc<Dag>>,
    pub errors: Vec<FileErrors>,
}

/// The folder itself could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the DAG folder {}: {source}; check `dags.folder` in the config or pass --dags", path.display())]
pub struct FolderError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

impl DagSet {
    /// Loads every `*.toml` file directly inside `dir`, in name order. A bad file is reported
    /// in `errors` and does not stop the others.
    pub fn load_folder(dir: &Path, registry: &Registry) -> Result<DagSet, FolderError> {
        let entries = std::fs::read_dir(dir).map_err(|source| FolderError {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml") && p.is_file())
            .collect();
        files.sort();
        Ok(DagSet::load_files(&files, registry))
    }

    /// Loads the given files. DAG ids must be unique: a later file that repeats an id is
    /// reported and the first one is kept.
    pub fn load_files(files: &[PathBuf], registry: &Registry) -> DagSet {
        let parsed = parse_files(files, registry);
        let mut set = DagSet::default();
        for (file, result) in files.iter().zip(parsed) {
            match result {
                Ok(dag) => match set.dags.get(&dag.id) {
                    Some(first) => set.errors.push(FileErrors {
                        file: file.clone(),
                        diagnostics: vec![Diagnostic {
                            file: file.clone(),
                            line: None,
                            task: None,
                            key: "id".into(),
                            message: format!(
                                "DAG id `{}` is already used by {}; give each DAG its own id",
                                dag.id,
                                first.file.display()
                            ),
                        }],
                    }),
                    None => {
                        set.dags.insert(dag.id.clone(), Arc::new(dag));
                    }
                },
                Err(errors) => set.errors.push(errors),
            }
        }
        set
    }

    pub fn get(&self, id: &str) -> Option<&Arc<Dag>> {
        self.dags.get(id)
    }
}

/// Reads and parses one file.
pub fn load_file(file: &Path, registry: &Registry) -> Result<Dag, FileErrors> {
    let src = std::fs::read_to_string(file).map_err(|e| FileErrors {
        file: file.to_path_buf(),
        diagnostics: vec![Diagnostic {
            file: file.to_path_buf(),
            line: None,
            task: None,
            key: "file".into(),
            message: format!("cannot read the file: {e}"),
        }],
    })?;
    parse_dag(file, &src, registry)
}

/// Parses files on all cores: loading a large folder is start-up time.
fn parse_files(files: &[PathBuf], registry: &Registry) -> Vec<Result<Dag, FileErrors>> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(files.len().div_ceil(64).max(1));
    if threads <= 1 {
        return files.iter().map(|f| load_file(f, registry)).collect();
    }
    let chunk = files.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = files
            .chunks(chunk)
            .map(|part| {
                let handle = scope.spawn(move || {
                    part.iter()
                        .map(|f| load_file(f, registry))
                        .collect::<Vec<_>>()
                });
                (part, handle)
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|(part, handle)| {
                // A parser bug must not take the other files down with it.
                handle.join().unwrap_or_else(|_| {
                    part.iter()
                        .map(|f| {
                            Err(FileErrors {
                                file: f.clone(),
                                diagnostics: vec![Diagnostic {
                                    file: f.clone(),
                                    line: None,
                                    task: None,
                                    key: "file".into(),
                                    message:
                                        "internal error while loading this file; please report it"
                                            .into(),
                                }],
                            })
                        })
                        .collect()
                })
            })
            .collect()
    })
}
