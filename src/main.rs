//! The command line: parse flags, then serve, ping or load through the library.

/// The flags and what they translate to.
mod cli;

use std::io::Write;
use std::process::ExitCode;

use log::{error, info, warn};

use pollmux::baseline::{self, Baseline};
use pollmux::client::{load, ping};
use pollmux::service::ServiceKind;
use pollmux::{Server, Shutdown};

use cli::{Command, Model, ServeArgs};

fn main() -> ExitCode {
    let cli = cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    match cli.command {
        Command::Serve(args) => match args.model {
            Model::Mux => serve(args),
            Model::Sequential => serve_baseline(args, baseline::Model::Sequential),
            Model::Threads => serve_baseline(args, baseline::Model::Threads),
            Model::Pool => serve_baseline(args, baseline::Model::Pool),
        },
        Command::Ping(args) => run_ping(args),
        Command::Load(args) => run_load(args),
    }
}

/// Flags that make no sense together, or a value out of range: logged, exit status 2.
fn usage_error(message: String) -> ExitCode {
    error!("{message}");
    ExitCode::from(2)
}

/// `serve --model mux`: the event loop, until a signal ends it.
fn serve(args: ServeArgs) -> ExitCode {
    if args.given("pool_size") {
        warn!("--pool-size applies to --model pool only; ignored");
    }
    let config = match args.into_config() {
        Ok(config) => config,
        Err(message) => return usage_error(message),
    };
    info!(
        "pollmux {}: backend {}, pid {}",
        env!("CARGO_PKG_VERSION"),
        config.backend.name(),
        std::process::id()
    );
    raise_nofile();
    let stats = config.stats;
    let mut server = match Server::bind(config) {
        Ok(server) => server,
        Err(e) => {
            error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    print_listening(server.listening());
    let result = server.run();
    if stats {
        info!("stats: {}", server.stats());
    }
    match result {
        Ok(Shutdown::Drained) => {
            info!("drained; exiting");
            ExitCode::SUCCESS
        }
        Ok(Shutdown::TimedOut) => ExitCode::SUCCESS,
        // the shell's convention for a process ended by a signal
        Ok(Shutdown::Forced(signal)) => ExitCode::from(128 + signal as u8),
        Err(e) => {
            error!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// Raises RLIMIT_NOFILE to its hard limit, saying what it did.
fn raise_nofile() {
    match pollmux::sys::limits::raise_nofile() {
        Ok((soft, hard)) if soft < hard => {
            info!("RLIMIT_NOFILE: soft limit raised {soft} -> {hard}")
        }
        Ok((_, hard)) => info!("RLIMIT_NOFILE: soft limit already at the hard limit {hard}"),
        Err(e) => log::warn!("cannot raise RLIMIT_NOFILE: {e}"),
    }
}

/// `serve --model sequential|threads|pool`: tcp-echo and tcp-upper, on blocking sockets.
/// A flag only the event loop uses is warned about.
fn serve_baseline(args: ServeArgs, model: baseline::Model) -> ExitCode {
    let services = match args.baseline_services(model) {
        Ok(services) => services,
        Err(message) => return usage_error(message),
    };
    let ignored = args.mux_only_given();
    if !ignored.is_empty() {
        warn!("{} apply to --model mux only; ignored", ignored.join(", "));
    }
    if model != baseline::Model::Pool && args.given("pool_size") {
        warn!("--pool-size applies to --model pool only; ignored");
    }
    let name = model.name();
    info!("pollmux {}: model {name}, pid {}", env!("CARGO_PKG_VERSION"), std::process::id());
    raise_nofile();
    let server = match Baseline::bind(model, &args.host, &services, args.baseline_options()) {
        Ok(server) => server,
        Err(e) => {
            error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    match server.listening() {
        Ok(listening) => print_listening(&listening),
        Err(e) => {
            error!("getsockname: {e}");
            return ExitCode::FAILURE;
        }
    }
    server.run()
}

/// The `listening <service> <address>` lines scripts and tests wait on: all
/// of them once every socket is bound, then flushed.
fn print_listening(listening: &[(ServiceKind, std::net::SocketAddr)]) {
    let mut stdout = std::io::stdout().lock();
    for (service, addr) in listening {
        let _ = writeln!(stdout, "listening {} {addr}", service.name());
    }
    let _ = stdout.flush();
}

/// `pollmux ping`: exit 0 if any reply came back, 1 if none, 2 on bad flags or errors.
fn run_ping(args: cli::PingArgs) -> ExitCode {
    let options = match args.into_options() {
        Ok(options) => options,
        Err(message) => return usage_error(message),
    };
    match ping::run(&options, &mut std::io::stdout().lock()) {
        Ok(summary) if summary.received > 0 => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(e) => {
            error!("{e}");
            ExitCode::from(2)
        }
    }
}

/// `pollmux load`: exit 0 if every reply was right, 1 on any error, 2 on bad flags or setup errors.
fn run_load(args: cli::LoadArgs) -> ExitCode {
    let options = match args.into_options() {
        Ok(options) => options,
        Err(message) => return usage_error(message),
    };
    match load::run(&options, &mut std::io::stdout().lock()) {
        Ok(report) if report.errors == 0 => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(e) => {
            error!("{e}");
            ExitCode::from(2)
        }
    }
}
