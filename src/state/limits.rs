//! The input limits `[limits]` in `config/vigil.toml` sets: the budgets on what a DAG file, a
//! trigger's conf, an API request and a template may cost. They are read where the input
//! arrives — the DAG loader, the conf parser, the API's body limit, the template engine —
//! which are far apart and far below the config, so the process holds one set, fixed at start
//! by the CLI before anything is loaded ([`set_input_limits`]); until then, and in library use
//! that never sets them, the defaults hold.
//!
//! Each limit exceeded is an error that names it and its key. The two execution limits —
//! result bytes and log bytes per attempt — travel with the executor instead
//! (`[executor] max_result_bytes`, `max_log_bytes`).

use std::sync::OnceLock;

use serde::Deserialize;

/// `[limits]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InputLimits {
    /// The largest DAG file read. A real DAG is a few kilobytes; the cap keeps a stray data
    /// file named `*.toml` from costing memory at every load and in every run that records its
    /// source.
    pub dag_file_bytes: u64,
    /// The most tasks a DAG may have. A run creates every task instance at once and the web
    /// page draws them all; 40,000 `noop` tasks fit in a 1 MiB file and took 0.9 s and 140 MB
    /// just to validate.
    pub tasks_per_dag: usize,
    /// The largest trigger `conf`, as JSON text. Params are small settings; data goes in files.
    pub conf_bytes: usize,
    /// The largest HTTP request body the API reads.
    pub api_body_bytes: usize,
    /// Steps (minijinja fuel) one template render may take. A templated config is small work:
    /// the largest real one, a loop over a few hundred upstream rows, takes tens of thousands;
    /// the budget stops a runaway loop in well under a second.
    pub template_steps: u64,
    /// Bytes one template may produce per render (its text, or its value as JSON). Enough for a
    /// whole upstream result (a `command` task's stdout is capped lower by default).
    pub template_output_bytes: usize,
}

impl Default for InputLimits {
    fn default() -> InputLimits {
        InputLimits {
            dag_file_bytes: 1 << 20,
            tasks_per_dag: 10_000,
            conf_bytes: 64 << 10,
            api_body_bytes: 1 << 20,
            template_steps: 5_000_000,
            template_output_bytes: 16 << 20,
        }
    }
}

impl InputLimits {
    /// The first limit that is zero, as its key: a zero limit would refuse every input.
    pub fn zero_key(&self) -> Option<&'static str> {
        [
            ("dag_file_bytes", self.dag_file_bytes == 0),
            ("tasks_per_dag", self.tasks_per_dag == 0),
            ("conf_bytes", self.conf_bytes == 0),
            ("api_body_bytes", self.api_body_bytes == 0),
            ("template_steps", self.template_steps == 0),
            ("template_output_bytes", self.template_output_bytes == 0),
        ]
        .into_iter()
        .find_map(|(key, zero)| zero.then_some(key))
    }
}

static LIMITS: OnceLock<InputLimits> = OnceLock::new();

/// Fixes this process's limits; the first call wins (the CLI makes it right after reading the
/// config).
pub fn set_input_limits(limits: InputLimits) {
    let _ = LIMITS.set(limits);
}

/// The limits in force.
pub fn input_limits() -> &'static InputLimits {
    LIMITS.get_or_init(InputLimits::default)
}

/// Bytes as the limits' messages show them: `64 KiB`, `1 MiB`, or bytes below a KiB.
pub fn show_bytes(n: u64) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else if n >= 1 << 10 && n.is_multiple_of(1 << 10) {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} bytes")
    }
}
