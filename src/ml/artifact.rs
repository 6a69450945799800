//! Model artifacts on disk: content-addressed files, written atomically, read back with their
//! checksum checked. (Which registered version to load is `ops::risk`'s business.)
//!
//! Two formats. The risk model is written **binary**: the 8 bytes `VIGILART`, a container
//! version (`u32`, little-endian), then the model as CBOR, deflated. CBOR because the model is
//! mostly small records that serde describes (spec, encodings, metrics) around one large
//! packed forest ([`crate::ml::packed`]); a self-describing format keeps `#[serde(default)]`
//! working as fields are added. The regression models of the `ml.*` tasks are small and stay
//! **JSON**, as do risk artifacts written before the binary format (still read).

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::ml::MlError;
use crate::state::sha256_hex;

const MAGIC: &[u8; 8] = b"VIGILART";
const CONTAINER: u32 = 1;
/// The most bytes an artifact may inflate to. A full-depth forest on 200,000 rows inflates to
/// about 40 MB; the cap only stops a damaged or hostile file from filling memory.
pub const MAX_INFLATED: u64 = 2 << 30;

/// Writes `value` as `<dir>/<name>-<sha256 prefix>.bin` in the binary format. Returns path,
/// checksum and size.
pub fn save_binary<T: serde::Serialize>(
    value: &T,
    dir: &Path,
    name: &str,
) -> Result<(PathBuf, String, u64), MlError> {
    let failed = |reason: String| MlError::Artifact {
        path: dir.to_path_buf(),
        reason,
    };
    let mut bytes = MAGIC.to_vec();
    bytes.extend_from_slice(&CONTAINER.to_le_bytes());
    let mut deflate = flate2::write::DeflateEncoder::new(bytes, flate2::Compression::default());
    ciborium::into_writer(value, &mut deflate).map_err(|e| failed(e.to_string()))?;
    let bytes = deflate.finish().map_err(|e| failed(e.to_string()))?;
    write_content_addressed(&bytes, dir, name, "bin")
}

/// Writes `value` as `<dir>/<name>-<sha256 prefix>.json`.
pub fn save_json<T: serde::Serialize>(
    value: &T,
    dir: &Path,
    name: &str,
) -> Result<(PathBuf, String, u64), MlError> {
    let bytes = serde_json::to_vec(value).map_err(|e| MlError::Artifact {
        path: dir.to_path_buf(),
        reason: e.to_string(),
    })?;
    write_content_addressed(&bytes, dir, name, "json")
}

/// Content-addressed (the same model gives the same file, and no file is ever overwritten with
/// different content), written through a temporary file so a crash never leaves half an
/// artifact.
fn write_content_addressed(
    bytes: &[u8],
    dir: &Path,
    name: &str,
    extension: &str,
) -> Result<(PathBuf, String, u64), MlError> {
    let sha = sha256_hex(bytes);
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
    let path = dir.join(format!("{name}-{}.{extension}", &sha[..12]));
    let tmp = path.with_extension(format!("{extension}.tmp"));
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
        file.write_all(bytes).map_err(write_err(&tmp))?;
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

/// Whether `bytes` are a binary artifact (rather than JSON).
pub fn is_binary(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

/// Reads an artifact in either format. `what` names the expected content in errors ("a vigil
/// risk model").
pub fn decode<T: serde::de::DeserializeOwned>(
    path: &Path,
    bytes: &[u8],
    what: &str,
) -> Result<T, MlError> {
    let bad = |reason: String| MlError::Artifact {
        path: path.to_path_buf(),
        reason,
    };
    if !is_binary(bytes) {
        return serde_json::from_slice(bytes).map_err(|e| bad(format!("not {what}: {e}")));
    }
    let version = bytes
        .get(MAGIC.len()..MAGIC.len() + 4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_le_bytes)
        .ok_or_else(|| bad("it ends inside its header".into()))?;
    if version != CONTAINER {
        return Err(bad(format!(
            "artifact container {version} but this vigil reads {CONTAINER}; train the model again"
        )));
    }
    let mut body = Vec::new();
    flate2::read::DeflateDecoder::new(&bytes[MAGIC.len() + 4..])
        .take(MAX_INFLATED + 1)
        .read_to_end(&mut body)
        .map_err(|e| bad(format!("its compressed body is damaged: {e}")))?;
    if body.len() as u64 > MAX_INFLATED {
        return Err(bad(format!(
            "it inflates past {MAX_INFLATED} bytes, more than any model vigil writes"
        )));
    }
    ciborium::from_reader(body.as_slice()).map_err(|e| bad(format!("not {what}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Thing {
        name: String,
        values: Vec<f64>,
    }

    #[test]
    fn both_formats_read_back_and_damage_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let thing = Thing {
            name: "x".into(),
            values: vec![0.5; 1000],
        };
        let (bin, sha, size) = save_binary(&thing, dir.path(), "thing").unwrap();
        let (json, _, json_size) = save_json(&thing, dir.path(), "thing").unwrap();
        assert!(bin.to_string_lossy().ends_with(".bin"));
        assert!(size < json_size / 10, "{size} vs {json_size}");
        for path in [&bin, &json] {
            let bytes = read_checked(path, None).unwrap();
            assert_eq!(decode::<Thing>(path, &bytes, "a thing").unwrap(), thing);
        }
        let bytes = read_checked(&bin, Some(&sha)).unwrap();
        for (cut, want) in [(bytes.len() - 3, "damaged"), (10, "ends inside its header")] {
            let e = decode::<Thing>(&bin, &bytes[..cut], "a thing").unwrap_err();
            assert!(e.to_string().contains(want), "{e}");
            assert!(e.to_string().contains("thing-"), "{e}");
        }
        let mut other = bytes.clone();
        other[8] = 9;
        let e = decode::<Thing>(&bin, &other, "a thing").unwrap_err();
        assert!(e.to_string().contains("container 9"), "{e}");
        let e = decode::<Thing>(&bin, b"{\"name\": 1}", "a thing").unwrap_err();
        assert!(e.to_string().contains("not a thing"), "{e}");
    }
}
