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
pub use params::{ConfError, parse_conf, resolve_params};
pub use parse::{check_id, parse_cron, parse_dag};
pub use spec::{Backoff, Dag, RetryPolicy, Schedule, TaskSpec, TriggerRule};

use crate::task::Registry;

/// The DAGs of a folder (or a list of files): the good ones, and the errors of the others.
#[derive(Debug, Default, Clone)]
pub struct DagSet {
    pub dags: BTreeMap<String, Arc<Dag>>,
    pub errors: Vec<FileErrors>,
}

/// The folder itself could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the DAG folder {} (check `dags.folder` in the config, or pass --dags)", path.display())]
pub struct FolderError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

impl crate::state::Kind for FolderError {
    fn kind(&self) -> crate::state::ErrorKind {
        crate::state::ErrorKind::Unavailable
    }
}

impl DagSet {
    /// Loads every `*.toml` file directly inside `dir`, in name order. A bad file is reported
    /// in `errors` and does not stop the others.
    pub fn load_folder(dir: &Path, registry: &Registry) -> Result<DagSet, FolderError> {
        DagSet::load_paths(&[dir.to_path_buf()], registry)
    }

    /// Loads DAG files and folders of them (their `*.toml` entries, in name order).
    pub fn load_paths(paths: &[PathBuf], registry: &Registry) -> Result<DagSet, FolderError> {
        let mut files = Vec::new();
        let mut odd = Vec::new();
        for path in paths {
            if !path.is_dir() {
                files.push(path.clone());
                continue;
            }
            let entries = std::fs::read_dir(path).map_err(|source| FolderError {
                path: path.clone(),
                source,
            })?;
            let mut found = Vec::new();
            for entry in entries.filter_map(Result::ok).map(|e| e.path()) {
                if entry.extension().is_none_or(|e| e != "toml") {
                    continue;
                }
                // `is_file` follows links: a link to a DAG file is a DAG file. A directory, a
                // FIFO (reading it would block) or a dangling link is reported, not read.
                if entry.is_file() {
                    found.push(entry);
                } else {
                    odd.push(entry);
                }
            }
            found.sort();
            files.extend(found);
        }
        odd.sort();
        let mut set = DagSet::load_files(&files, registry);
        set.errors.extend(odd.into_iter().map(|file| {
            FileErrors::whole_file(
                &file,
                "is not a regular file (a directory, a FIFO or a dangling link), so it was not loaded; remove it or rename it so it does not end in .toml",
            )
        }));
        Ok(set)
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
    use std::io::Read;
    let cannot =
        |e: std::io::Error| FileErrors::whole_file(file, &format!("cannot read the file: {e}"));
    let limit = crate::state::limits::input_limits().dag_file_bytes;
    let mut bytes = Vec::new();
    std::fs::File::open(file)
        .map_err(cannot)?
        // One byte past the cap tells a file at the cap from a larger one.
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() as u64 > limit {
        return Err(FileErrors::whole_file(
            file,
            &format!(
                "is larger than {}, the most a DAG file may be (`[limits] dag_file_bytes`); keep data in other files and pass their paths",
                crate::state::limits::show_bytes(limit)
            ),
        ));
    }
    let src = String::from_utf8(bytes).map_err(|e| {
        FileErrors::whole_file(
            file,
            &format!(
                "is not UTF-8 text (invalid byte at offset {}); save it as UTF-8",
                e.utf8_error().valid_up_to()
            ),
        )
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
                            Err(FileErrors::whole_file(
                                f,
                                "internal error while loading this file; please report it",
                            ))
                        })
                        .collect()
                })
            })
            .collect()
    })
}
