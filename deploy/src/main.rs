//! The one `magnum` binary: thin dispatch into the crates.
use clap::Parser;

/// jemalloc rather than glibc's malloc: it hands freed pages back to the kernel, where glibc
/// keeps them in each thread's arena (a conductor's RSS after a burst of writes).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    // magnum.conf first: its keys become flags placed before the command line's own.
    let argv = match magnum_deploy::config_file::expand(std::env::args_os().collect()) {
        Ok(argv) => argv,
        Err(e) => {
            eprintln!("magnum: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let cli = magnum_deploy::cli::Cli::parse_from(argv);
    magnum_deploy::init_tracing();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("magnum: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(magnum_deploy::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("magnum: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
