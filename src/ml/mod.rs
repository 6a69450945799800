//! Machine learning for deployment risk and the `ml.*` tasks: reading CSV files ([`data`]),
//! our decision tree and random forest on linfa's traits ([`bins`], [`tree`], [`forest`]),
//! metrics ([`metrics`]) and the simulator of deployment history ([`simulate`]).

pub mod artifact;
pub mod baseline;
pub mod bins;
pub mod category;
pub mod data;
pub mod forest;
pub mod metrics;
pub mod packed;
pub mod regress;
pub mod report;
pub mod risk;
pub mod search;
pub mod simulate;
pub mod spec;
pub mod tree;

use std::path::PathBuf;

pub use data::DataError;

#[derive(Debug, thiserror::Error)]
pub enum MlError {
    #[error(transparent)]
    Data(#[from] DataError),
    #[error("{0}")]
    Invalid(String),
    #[error("the learning library failed")]
    Linfa(#[from] linfa::Error),
    #[error("logistic regression failed")]
    Logistic(#[from] linfa_logistic::error::Error),
    #[error("linear regression failed")]
    Linear(#[from] linfa_linear::LinearError<f64>),
    #[error("scaling failed")]
    Scaling(#[from] linfa_preprocessing::PreprocessingError),
    #[error("stopped before the end (timeout or shutdown)")]
    Cancelled,
    #[error("{path}: {reason}")]
    Artifact { path: PathBuf, reason: String },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl crate::state::Kind for MlError {
    fn kind(&self) -> crate::state::ErrorKind {
        use crate::state::ErrorKind;
        match self {
            MlError::Write { .. } => ErrorKind::Unavailable,
            MlError::Cancelled => ErrorKind::Conflict,
            MlError::Linfa(_) | MlError::Logistic(_) | MlError::Linear(_) | MlError::Scaling(_) => {
                ErrorKind::Internal
            }
            MlError::Data(_) | MlError::Invalid(_) | MlError::Artifact { .. } => ErrorKind::Invalid,
        }
    }
}
