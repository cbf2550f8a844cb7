//! The `tract-studio` binary: the command line of `front::cli` (without a command, the app).

fn main() -> std::process::ExitCode {
    tract_studio::front::cli::main()
}
