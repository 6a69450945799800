//! Machine learning for deployment risk. So far: the simulator of deployment history
//! ([`simulate`]); training, evaluation, scoring and plots are the rest of issue 6.

pub mod simulate;
