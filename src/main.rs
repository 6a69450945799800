//! The `vigil` binary: the CLI with the built-in task types.

fn main() -> std::process::ExitCode {
    vigil::cli::main(vigil::tasks::builtin())
}
