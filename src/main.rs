use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = apigen_mt::cli::Cli::parse();
    match apigen_mt::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // `{:#}` prints the whole context chain: "loading model: reading /path: ...".
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}
