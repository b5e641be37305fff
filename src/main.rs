//! The command line: parse flags, then serve, ping or load through the library.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use log::{error, info};

use pollmux::baseline::{self, Baseline};
use pollmux::client::{load, ping};
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
    /// UDP PING/PONG round trips to a udp-ping service, reported like ping(8).
    Ping(PingArgs),
    /// TCP load against an echo-like server: messages/s and latency percentiles, every reply byte checked.
    Load(LoadArgs),
}

/// Flags of `pollmux serve`. Each port takes a number, 0 for a free port, or `off`.
#[derive(Args, Debug)]
struct ServeArgs {
    /// Address or name to bind every service on (IPv4, IPv6 such as ::1, or a name).
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// The server: the event loop, or a blocking comparison server (tcp-echo only).
    #[arg(long, value_enum, default_value = "mux")]
    model: Model,
    /// The wait syscall (--model mux only).
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

/// What `pollmux serve --model` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Model {
    /// The single-threaded event loop over --backend, serving every service.
    Mux,
    /// Blocking: one client at a time.
    Sequential,
    /// Blocking: one thread per connection.
    Threads,
    /// Blocking: a pool of 4 threads sharing the listener.
    Pool,
}

/// Flags of `pollmux ping`.
#[derive(Args, Debug)]
struct PingArgs {
    /// The udp-ping service: HOST:PORT (127.0.0.1:1234, [::1]:1234, localhost:1234).
    target: String,
    /// Packets to send.
    #[arg(short = 'c', long, value_name = "N", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(1..))]
    count: u64,
    /// Seconds between sends; 0 sends each as soon as the previous is answered or lost.
    #[arg(short = 'i', long, value_name = "SECS", default_value_t = 1.0)]
    interval: f64,
    /// Bytes per datagram: `PING <seq> ` padded with letters.
    #[arg(short = 's', long, value_name = "SIZE", default_value_t = 64)]
    size: usize,
    /// Seconds to wait for each reply before counting it lost.
    #[arg(short = 'W', long, value_name = "SECS", default_value_t = 1.0)]
    timeout: f64,
}

/// What `pollmux load --help` says below the flags: which mode measures what.
const LOAD_HELP: &str = "\
Closed loop (the default) measures the most the server can do: each connection sends its
next message when the previous reply is complete, and times it from that send.
Open loop (--rate R --duration S) measures latency at a given load: message k is due at
k/R seconds, on connection k mod N, sent whether or not earlier replies came back, and
timed from when it was due. A closed loop stops sending while the server stalls, so the
messages it would have sent are never timed (coordinated omission); the open loop times
every message the stall delayed.
--churn opens a new connection for each message (connect, send, read the reply, close),
--conns at a time, and times each from its connect: connections/s.
The last line is `RESULT key=value ...`: msgs_per_sec (achieved), offered_per_sec (open
loop), p50_us p90_us p99_us p999_us max_us, errors, over_1ms (messages slower than 1 ms),
lag_p99_us (open loop: how late the client itself queued messages, its share of the figures).";

/// Flags of `pollmux load`. Prints a summary and a last line `RESULT key=value ...`.
#[derive(Args, Debug)]
#[command(after_help = LOAD_HELP)]
struct LoadArgs {
    /// An echo-like TCP server: HOST:PORT.
    target: String,
    /// Connections: closed loop, each with one message outstanding; open loop, the
    /// messages are spread over them in turn; churn, connections open at once.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(1..))]
    conns: u64,
    /// Measured messages per connection (closed loop and churn).
    #[arg(long, value_name = "M", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..))]
    msgs: u64,
    /// Open loop: messages per second, all connections together, on a fixed schedule.
    #[arg(long, value_name = "MSGS_PER_S", requires = "duration", conflicts_with_all = ["msgs", "churn"])]
    rate: Option<f64>,
    /// Open loop: seconds of measured messages (after the warm-up).
    #[arg(long, value_name = "SECS", requires = "rate")]
    duration: Option<f64>,
    /// A new connection for each message: connect, send, read the reply, close.
    #[arg(long)]
    churn: bool,
    /// Bytes per message (lowercase ASCII).
    #[arg(long, value_name = "S", default_value_t = 64,
          value_parser = clap::value_parser!(u64).range(1..))]
    size: u64,
    /// What the server sends back: `echo` the bytes, or `upper` them ASCII-uppercased.
    #[arg(long, value_enum, default_value = "echo")]
    expect: load::Expect,
    /// Messages per connection exchanged and checked before measuring (open loop: the
    /// first ones of the schedule, at the same rate).
    #[arg(long, value_name = "W", default_value_t = 0)]
    warmup: u64,
    /// Client threads, each with its own epoll loop; 0: one per CPU but one (left to the server).
    #[arg(long, value_name = "T", default_value_t = 0)]
    threads: usize,
    /// Extra connections held open and silent during the run.
    #[arg(long, value_name = "N", default_value_t = 0)]
    idle: usize,
    /// Seconds without any reply while messages are outstanding after which they count as errors.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    timeout: f64,
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
/// Capped at 10^9 s (about 31 years) so that any deadline computed from it fits an `Instant`.
fn seconds(flag: &str, value: f64) -> Result<Duration, String> {
    const MAX_SECS: f64 = 1e9;
    Duration::try_from_secs_f64(value).ok().filter(|_| value <= MAX_SECS).ok_or_else(|| {
        format!("{flag} takes a number of seconds from 0 to {MAX_SECS}, got {value}")
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
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

/// `serve --model sequential|threads|pool`: tcp-echo alone, on blocking sockets.
/// A port asked for another service is an error rather than silently unserved.
fn serve_baseline(args: ServeArgs, model: baseline::Model) -> ExitCode {
    let name = model.name();
    let Port(Some(port)) = args.tcp_echo else {
        error!("--model {name} serves tcp-echo only, and --tcp-echo is off");
        return ExitCode::from(2);
    };
    let others = [
        (ServiceKind::TcpUpper, args.tcp_upper),
        (ServiceKind::TcpFrame, args.tcp_frame),
        (ServiceKind::TcpArray, args.tcp_array),
        (ServiceKind::UdpUpper, args.udp_upper),
        (ServiceKind::UdpPing, args.udp_ping),
    ];
    for (kind, Port(asked)) in others {
        if let Some(asked) = asked.filter(|&p| p != kind.default_port()) {
            let flag = kind.name();
            error!(
                "--model {name} serves tcp-echo only: drop --{flag} {asked}, or use --model mux"
            );
            return ExitCode::from(2);
        }
    }
    if args.backend != BackendKind::Poll || args.stats {
        log::warn!("--backend and --stats apply to --model mux only; ignored");
    }
    info!("pollmux {}: model {name}, pid {}", env!("CARGO_PKG_VERSION"), std::process::id());
    raise_nofile();
    let server = match Baseline::bind(model, &args.host, port) {
        Ok(server) => server,
        Err(e) => {
            error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    match server.local_addr() {
        Ok(addr) => print_listening(&[(ServiceKind::TcpEcho, addr)]),
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
fn run_ping(args: PingArgs) -> ExitCode {
    let durations = seconds("--interval", args.interval)
        .and_then(|interval| Ok((interval, seconds("--timeout", args.timeout)?)));
    let (interval, timeout) = match durations {
        Ok(durations) => durations,
        Err(message) => {
            error!("{message}");
            return ExitCode::from(2);
        }
    };
    let options = ping::Options {
        target: args.target,
        count: args.count,
        interval,
        size: args.size,
        timeout,
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
fn run_load(args: LoadArgs) -> ExitCode {
    let timeout = match seconds("--timeout", args.timeout) {
        Ok(timeout) => timeout,
        Err(message) => {
            error!("{message}");
            return ExitCode::from(2);
        }
    };
    let conns = args.conns as usize;
    let (pace, msgs) = match (args.rate, args.duration) {
        (Some(rate), Some(duration)) => {
            if !(rate.is_finite() && rate > 0.0) {
                error!("--rate takes a positive number of messages per second, got {rate}");
                return ExitCode::from(2);
            }
            let duration = match seconds("--duration", duration) {
                Ok(duration) if !duration.is_zero() => duration,
                Ok(_) => {
                    error!("--duration must be more than 0 seconds");
                    return ExitCode::from(2);
                }
                Err(message) => {
                    error!("{message}");
                    return ExitCode::from(2);
                }
            };
            (load::Pace::Open { rate }, load::open_loop_msgs(rate, duration, conns))
        }
        _ if args.churn => (load::Pace::Churn, args.msgs),
        _ => (load::Pace::Closed, args.msgs),
    };
    let options = load::Options {
        target: args.target,
        conns,
        msgs,
        pace,
        size: args.size as usize,
        expect: args.expect,
        warmup: args.warmup,
        threads: args.threads,
        idle: args.idle,
        timeout,
        progress: std::io::stderr().is_terminal(),
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
