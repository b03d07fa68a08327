//! The local dev server: every route on http://127.0.0.1:$PORT at its Vercel path, and the
//! files of `public/` (the admin console at `/admin`) with its local-only sign-in path.

use std::process::ExitCode;

use assistant::host::console::Console;
use assistant::host::local::serve_on_port;

#[tokio::main]
async fn main() -> ExitCode {
    let state = match assistant::startup::init() {
        Ok(state) => state,
        Err(error) => {
            eprintln!("startup failed: {error}");
            return ExitCode::FAILURE;
        }
    };
    let console = Console::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../public"))
        .connecting_to(state.settings.admin.supabase_url.as_deref());
    let serving = serve_on_port(assistant::routes::ROUTES, Some(console), state);
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
