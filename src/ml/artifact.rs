//! Model artifacts on disk and in the registry: content-addressed JSON files, the version to
//! use (given, else production, else newest), and reading back either kind of model.

use std::path::{Path, PathBuf};

pub use crate::store::models::sha256_hex;

use crate::ml::MlError;
use crate::ml::regress::{self, RegressorModel};
use crate::ml::risk::RiskModel;
use crate::store::models::{ModelStore, ModelVersion};

/// Writes `value` as `<dir>/<name>-<sha256 prefix>.json` (content-addressed: the same model
/// gives the same file, and no file is ever overwritten with different content), through a
/// temporary file so a crash never leaves half an artifact. Returns path, checksum and size.
pub fn save_json<T: serde::Serialize>(
    value: &T,
    dir: &Path,
    name: &str,
) -> Result<(PathBuf, String, u64), MlError> {
    let bytes = serde_json::to_vec(value).map_err(|e| MlError::Artifact {
        path: dir.to_path_buf(),
        reason: e.to_string(),
    })?;
    let sha = sha256_hex(&bytes);
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| MlError::Write { path, source }
    };
    {
        use std::os::unix::fs::DirBuilderExt;
        // Models can encode their training data: readable by their owner only.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(write_err(dir))?;
    }
    // Absolute, so the registry's path means the same file from any working directory.
    let dir = std::fs::canonicalize(dir).map_err(write_err(dir))?;
    let path = dir.join(format!("{name}-{}.json", &sha[..12]));
    let tmp = path.with_extension("json.tmp");
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(write_err(&tmp))?;
        file.write_all(&bytes).map_err(write_err(&tmp))?;
        file.sync_all().map_err(write_err(&tmp))?;
    }
    std::fs::rename(&tmp, &path).map_err(write_err(&path))?;
    Ok((path, sha, bytes.len() as u64))
}

/// Reads an artifact's bytes, checking the checksum the registry recorded.
pub fn read_checked(path: &Path, sha256: Option<&str>) -> Result<Vec<u8>, MlError> {
    let bad = |reason: String| MlError::Artifact {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
    if let Some(want) = sha256 {
        let got = sha256_hex(&bytes);
        if got != want {
            return Err(bad(format!(
                "its checksum is {got}, the registry recorded {want}: the file changed after registration; retrain or register it again"
            )));
        }
    }
    Ok(bytes)
}

/// The version to use: `version` if given, else production, else the newest; with the path
/// and checksum of its artifact file.
pub async fn resolve(
    store: &dyn ModelStore,
    model: &str,
    version: Option<&str>,
) -> Result<(ModelVersion, PathBuf, String), MlError> {
    let none = || {
        MlError::Invalid(format!(
            "no version of model `{model}` is registered; train one first"
        ))
    };
    let v = match version {
        Some(v) => store.version(model, v).await?.ok_or_else(|| {
            MlError::Invalid(format!(
                "model `{model}` has no version `{v}`; `vigil model history {model}` lists them"
            ))
        })?,
        None => {
            let production = store.model(model).await?.and_then(|m| m.production_version);
            match production {
                Some(p) => store.version(model, &p).await?.ok_or_else(none)?,
                None => store
                    .versions(model, 1)
                    .await?
                    .into_iter()
                    .next()
                    .ok_or_else(none)?,
            }
        }
    };
    let file = v.artifact.as_ref().and_then(|a| {
        a.path
            .as_ref()
            .map(|p| (PathBuf::from(p), a.sha256.clone()))
    });
    let Some((path, sha)) = file else {
        return Err(MlError::Invalid(format!(
            "version {} of `{model}` has no artifact file",
            v.version
        )));
    };
    Ok((v, path, sha))
}

/// Either kind of model vigil trains.
pub enum Loaded {
    Risk(Box<RiskModel>),
    Regressor(Box<RegressorModel>),
}

/// Reads a registered version's artifact, whichever kind it is.
pub async fn load_any(
    store: &dyn ModelStore,
    model: &str,
    version: Option<&str>,
) -> Result<(ModelVersion, Loaded), MlError> {
    let (v, path, sha) = resolve(store, model, version).await?;
    let bytes = read_checked(&path, Some(&sha))?;
    #[derive(serde::Deserialize)]
    struct Kind {
        kind: Option<String>,
    }
    let kind: Option<Kind> = serde_json::from_slice(&bytes).ok();
    if kind.and_then(|k| k.kind).as_deref() == Some(regress::KIND) {
        let m = serde_json::from_slice(&bytes).map_err(|e| MlError::Artifact {
            path: path.clone(),
            reason: format!("not a vigil regressor: {e}"),
        })?;
        return Ok((v, Loaded::Regressor(Box::new(m))));
    }
    Ok((
        v,
        Loaded::Risk(Box::new(RiskModel::from_bytes(&path, &bytes)?)),
    ))
}
