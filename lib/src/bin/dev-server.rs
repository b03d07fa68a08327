//! The local dev server: every route on http://127.0.0.1:$PORT at its Vercel path.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let state = match assistant::startup::init() {
        Ok(state) => state,
        Err(error) => {
            eprintln!("startup failed: {error}");
            return ExitCode::FAILURE;
        }
    };
    let serving = assistant::host::local::serve_on_port(assistant::routes::ROUTES, state);
    tokio::select! {
        result = serving => match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("dev server failed: {error}");
                ExitCode::FAILURE
            }
        },
        _ = tokio::signal::ctrl_c() => ExitCode::SUCCESS,
    }
}
