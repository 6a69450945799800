//! Model artifacts on disk: content-addressed JSON files, written atomically, read back with
//! their checksum checked. (Which registered version to load is `ops::risk`'s business.)

use std::path::{Path, PathBuf};

use crate::ml::MlError;
use crate::state::sha256_hex;

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
