//! Database-wide operations: moving a history from SQLite into PostgreSQL.

use crate::ops::OpsError;
use crate::store::copy::Copied;

/// `vigil db copy`: the SQLite database `from` into the empty PostgreSQL database `to`,
/// verified table by table (see `store::copy`).
pub async fn copy(from: &str, to: &str) -> Result<Copied, OpsError> {
    Ok(crate::store::copy::copy(from, to).await?)
}
