//! The command line: parse flags, build the server, run it.

use std::io::Write;
use std::process::ExitCode;
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use log::{error, info};

use pollmux::service::ServiceKind;
use pollmux::sys::BackendKind;
use pollmux::{Config, Server, Shutdown};

/// One single-threaded process serving UDP and TCP over poll(2), select(2) or epoll(7).
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the six services; prints `listening <service> <address>` per service once bound.
    Serve(ServeArgs),
}

/// Flags of `pollmux serve`. Each port takes a number, 0 for a free port, or `off`.
#[derive(Args, Debug)]
struct ServeArgs {
    /// Address or name to bind every service on (IPv4, IPv6 such as ::1, or a name).
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// The wait syscall.
    #[arg(long, value_enum, default_value = "poll")]
    backend: BackendKind,
    /// TCP echo: every byte back, verbatim.
    #[arg(long, value_name = "PORT", default_value = "20000")]
    tcp_echo: Port,
    /// TCP upper: the stream uppercased as UTF-8.
    #[arg(long, value_name = "PORT", default_value = "1236")]
    tcp_upper: Port,
    /// TCP frames: 4-byte big-endian length + payload, answered uppercased.
    #[arg(long, value_name = "PORT", default_value = "1241")]
    tcp_frame: Port,
    /// TCP array: `OFFSET:COUNT` frames answered with float64 slices.
    #[arg(long, value_name = "PORT", default_value = "25000")]
    tcp_array: Port,
    /// UDP upper: each datagram answered uppercased.
    #[arg(long, value_name = "PORT", default_value = "1235")]
    udp_upper: Port,
    /// UDP ping: PING... answered with PONG...
    #[arg(long, value_name = "PORT", default_value = "1234")]
    udp_ping: Port,
    /// How many float64 values tcp-array serves (a[i] = i; 8 bytes each, held in memory).
    #[arg(long, value_name = "N", default_value_t = 50_000_000)]
    array_len: usize,
    /// Largest frame body accepted by tcp-frame and tcp-array; a larger header closes the connection.
    #[arg(long, value_name = "BYTES", default_value_t = 16 << 20)]
    max_frame: u32,
    /// Unsent bytes per connection past which reading from it pauses until half has drained.
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 20)]
    max_pending: usize,
    /// Connections served at once; past it, new ones are accepted and closed at once.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    max_conns: usize,
    /// Seconds of silence after which a connection is closed (0: never).
    #[arg(long, value_name = "SECS", default_value_t = 300.0)]
    idle_timeout: f64,
    /// Seconds shutdown may spend sending what is owed before cutting connections.
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    drain_timeout: f64,
    /// Print wait, syscall and byte counts every second and at exit.
    #[arg(long)]
    stats: bool,
}

/// A port flag: a number, or `off`.
#[derive(Debug, Clone, Copy)]
struct Port(Option<u16>);

impl FromStr for Port {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "off" {
            return Ok(Port(None));
        }
        s.parse()
            .map(|p| Port(Some(p)))
            .map_err(|_| format!("expected a port number 0-65535 or `off`, got {s:?}"))
    }
}

impl ServeArgs {
    fn into_config(self) -> Result<Config, String> {
        let drain_timeout = seconds("--drain-timeout", self.drain_timeout)?;
        let idle_timeout = seconds("--idle-timeout", self.idle_timeout)?;
        let ports = [
            self.tcp_echo,
            self.tcp_upper,
            self.tcp_frame,
            self.tcp_array,
            self.udp_upper,
            self.udp_ping,
        ];
        Ok(Config {
            host: self.host,
            backend: self.backend,
            ports: ServiceKind::ALL.into_iter().zip(ports.map(|p| p.0)).collect(),
            array_len: self.array_len,
            max_frame: self.max_frame,
            max_pending: self.max_pending,
            max_conns: self.max_conns,
            idle_timeout: (!idle_timeout.is_zero()).then_some(idle_timeout),
            drain_timeout,
            stats: self.stats,
        })
    }
}

/// A duration flag in seconds: finite and not negative.
fn seconds(flag: &str, value: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| format!("{flag} takes a number of seconds >= 0, got {value}"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    match cli.command {
        Command::Serve(args) => serve(args),
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    let config = match args.into_config() {
        Ok(config) => config,
        Err(message) => {
            error!("{message}");
            return ExitCode::from(2);
        }
    };
    info!(
        "pollmux {}: backend {}, pid {}",
        env!("CARGO_PKG_VERSION"),
        config.backend.name(),
        std::process::id()
    );
    match pollmux::sys::limits::raise_nofile() {
        Ok((soft, hard)) if soft < hard => {
            info!("RLIMIT_NOFILE: soft limit raised {soft} -> {hard}")
        }
        Ok((_, hard)) => info!("RLIMIT_NOFILE: soft limit already at the hard limit {hard}"),
        Err(e) => log::warn!("cannot raise RLIMIT_NOFILE: {e}"),
    }
    let stats = config.stats;
    let mut server = match Server::bind(config) {
        Ok(server) => server,
        Err(e) => {
            error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout().lock();
    for (service, addr) in server.listening() {
        let _ = writeln!(stdout, "listening {} {addr}", service.name());
    }
    let _ = stdout.flush();
    drop(stdout);
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
        Ok(Shutdown::Forced) => ExitCode::FAILURE,
        Err(e) => {
            error!("{e}");
            ExitCode::FAILURE
        }
    }
}
