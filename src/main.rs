//! The command line: parse flags, then serve, ping or load through the library.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::str::FromStr;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use log::{error, info, warn};

use pollmux::baseline::{self, Baseline};
use pollmux::client::{load, ping};
use pollmux::service::array::ArrayWire;
use pollmux::service::{ServiceKind, Settings};
use pollmux::sys::BackendKind;
use pollmux::sys::net::DEFAULT_BACKLOG;
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
    /// The server: the event loop, or a blocking comparison server (tcp-echo and tcp-upper only).
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
    /// TCP array: `OFFSET:COUNT` requests answered with float64 slices (see --array-wire).
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
    /// How tcp-array talks: `framed`, many framed requests per connection; `fixed`, the lessons'
    /// one 10-byte OFFSET:COUNT request answered by the raw values; `push`, the whole array on connect.
    #[arg(long, value_enum, value_name = "WIRE", default_value = "framed")]
    array_wire: ArrayWire,
    /// Largest frame body accepted by tcp-frame and tcp-array; a larger header closes the connection.
    /// BYTES here and below: a number, optionally with KiB, MiB or GiB.
    #[arg(long, value_name = "BYTES", default_value = "16MiB")]
    max_frame: Bytes,
    /// Unsent bytes per connection past which reading from it pauses until half has drained.
    #[arg(long, value_name = "BYTES", default_value = "1MiB")]
    max_pending: Bytes,
    /// Memory all connections may hold together, input and output (array replies are not copies
    /// and do not count); a connection that needs more than is left is closed.
    #[arg(long, value_name = "BYTES", default_value = "256MiB")]
    max_buffered: Bytes,
    /// Connections served at once; past it, new ones are accepted and closed at once.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    max_conns: usize,
    /// Seconds of silence after which a connection is closed (0: never).
    #[arg(long, value_name = "SECS", default_value_t = 300.0)]
    idle_timeout: f64,
    /// Seconds shutdown (SIGINT, SIGTERM, SIGHUP) may spend sending what is owed before cutting connections.
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    drain_timeout: f64,
    /// Seconds a connection that broke the protocol may go on sending (read and thrown away) before it is cut.
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    linger_timeout: f64,
    /// Seconds of silence before TCP keepalive probes a peer, so dead peers go away (0: off).
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    keepalive: u32,
    /// UDP replies per second per source address; the rest are not answered (0: unlimited, for benchmarks).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    udp_rate: u32,
    /// Print wait, syscall and byte counts every second and at exit.
    #[arg(long)]
    stats: bool,
    /// listen(2) backlog of every TCP listener, every model: connections the kernel queues until
    /// accepted (it caps the number at net.core.somaxconn).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_BACKLOG, value_parser = backlog)]
    backlog: u32,
    /// Milliseconds between reading a request and writing its reply (tcp-echo and tcp-upper). The
    /// baselines sleep that long before each reply, as the lessons' slow servers do; --model mux
    /// sets a timer instead, and serves everyone else meanwhile.
    #[arg(long, value_name = "MS", default_value_t = 0, value_parser = reply_delay)]
    reply_delay: u64,
    /// Threads of --model pool, per service, each serving one client at a time.
    #[arg(long, value_name = "N", default_value_t = baseline::pool::DEFAULT_THREADS,
          value_parser = pool_size)]
    pool_size: usize,
    /// The ids of the flags given on the command line (not defaulted), filled in after parsing.
    #[arg(skip)]
    given: Vec<String>,
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
    /// Blocking: a pool of --pool-size threads sharing the listener.
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

/// A size flag: a number of bytes, optionally with a binary unit (`64KiB`, `16MiB`, `1GiB`).
#[derive(Debug, Clone, Copy)]
struct Bytes(usize);

impl FromStr for Bytes {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (number, unit) = s.split_at(digits);
        let shift = match unit.trim() {
            "" | "B" => 0,
            "K" | "KiB" => 10,
            "M" | "MiB" => 20,
            "G" | "GiB" => 30,
            _ => {
                return Err(format!(
                    "expected a number of bytes such as 65536, 64KiB, 16MiB or 1GiB, got {s:?}"
                ));
            }
        };
        number.parse::<usize>().ok().and_then(|n| n.checked_mul(1 << shift)).map(Bytes).ok_or_else(
            || format!("expected a number of bytes such as 65536, 64KiB, 16MiB or 1GiB, got {s:?}"),
        )
    }
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

/// The largest `--backlog`: listen(2) takes an int, but the kernel caps it far lower.
const MAX_BACKLOG: u32 = 65535;
/// The largest `--pool-size`.
const MAX_POOL_SIZE: usize = 10_000;
/// The longest `--reply-delay`: one day.
const MAX_REPLY_DELAY_MS: u64 = 24 * 3600 * 1000;

/// `--backlog`: 1 to MAX_BACKLOG.
fn backlog(s: &str) -> Result<u32, String> {
    s.parse()
        .ok()
        .filter(|n| (1..=MAX_BACKLOG).contains(n))
        .ok_or_else(|| format!("expected a listen(2) backlog from 1 to {MAX_BACKLOG}, got {s:?}"))
}

/// `--pool-size`: 1 to MAX_POOL_SIZE.
fn pool_size(s: &str) -> Result<usize, String> {
    s.parse()
        .ok()
        .filter(|n| (1..=MAX_POOL_SIZE).contains(n))
        .ok_or_else(|| format!("expected a number of threads from 1 to {MAX_POOL_SIZE}, got {s:?}"))
}

/// `--reply-delay`: 0 to MAX_REPLY_DELAY_MS milliseconds.
fn reply_delay(s: &str) -> Result<u64, String> {
    s.parse().ok().filter(|&n| n <= MAX_REPLY_DELAY_MS).ok_or_else(|| {
        format!("expected milliseconds from 0 to {MAX_REPLY_DELAY_MS} (one day), got {s:?}")
    })
}

impl ServeArgs {
    /// True when `id` (a field name: `tcp_frame`) was given on the command line.
    fn given(&self, id: &str) -> bool {
        self.given.iter().any(|g| g == id)
    }

    fn into_config(self) -> Result<Config, String> {
        let drain_timeout = seconds("--drain-timeout", self.drain_timeout)?;
        let idle_timeout = seconds("--idle-timeout", self.idle_timeout)?;
        let linger_timeout = seconds("--linger-timeout", self.linger_timeout)?;
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
            services: Settings {
                array_len: self.array_len,
                array_wire: self.array_wire,
                max_frame: u32::try_from(self.max_frame.0).map_err(|_| {
                    format!(
                        "--max-frame {} is over 4 GiB, more than a 4-byte length can announce",
                        self.max_frame.0
                    )
                })?,
            },
            max_pending: self.max_pending.0,
            max_buffered: self.max_buffered.0,
            max_conns: self.max_conns,
            idle_timeout: (!idle_timeout.is_zero()).then_some(idle_timeout),
            drain_timeout,
            linger_timeout,
            keepalive: (self.keepalive > 0).then(|| Duration::from_secs(self.keepalive.into())),
            udp_rate: self.udp_rate,
            stats: self.stats,
            backlog: self.backlog,
            reply_delay: Duration::from_millis(self.reply_delay),
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
    let matches = Cli::command().get_matches();
    let mut cli =
        Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.format(&mut Cli::command()).exit());
    if let (Command::Serve(args), Some(serve)) =
        (&mut cli.command, matches.subcommand_matches("serve"))
    {
        // Which flags were typed, so that a baseline can refuse one it cannot honour
        // even when it carries the default value.
        args.given = serve
            .ids()
            .filter(|id| serve.value_source(id.as_str()) == Some(ValueSource::CommandLine))
            .map(|id| id.to_string())
            .collect();
    }
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
    if args.given("pool_size") {
        warn!("--pool-size applies to --model pool only; ignored");
    }
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

/// `serve --model sequential|threads|pool`: tcp-echo and tcp-upper, on blocking sockets.
/// A port given for another service is an error rather than silently unserved;
/// a flag only the event loop uses is warned about.
fn serve_baseline(args: ServeArgs, model: baseline::Model) -> ExitCode {
    let name = model.name();
    let others = [
        ("tcp_frame", args.tcp_frame),
        ("tcp_array", args.tcp_array),
        ("udp_upper", args.udp_upper),
        ("udp_ping", args.udp_ping),
    ];
    for (id, Port(asked)) in others {
        if let Some(asked) = asked.filter(|_| args.given(id)) {
            let flag = id.replace('_', "-");
            error!(
                "--model {name} serves tcp-echo and tcp-upper only: drop --{flag} {asked}, \
                 or use --model mux"
            );
            return ExitCode::from(2);
        }
    }
    let services: Vec<(ServiceKind, u16)> =
        [(ServiceKind::TcpEcho, args.tcp_echo), (ServiceKind::TcpUpper, args.tcp_upper)]
            .into_iter()
            .filter_map(|(kind, Port(port))| Some((kind, port?)))
            .collect();
    if services.is_empty() {
        error!("--model {name} serves tcp-echo and tcp-upper, and both are off");
        return ExitCode::from(2);
    }
    const MUX_ONLY: [&str; 9] = [
        "backend",
        "stats",
        "array_len",
        "array_wire",
        "max_frame",
        "max_pending",
        "max_conns",
        "idle_timeout",
        "drain_timeout",
    ];
    let ignored: Vec<String> = MUX_ONLY
        .iter()
        .filter(|id| args.given(id))
        .map(|id| format!("--{}", id.replace('_', "-")))
        .collect();
    if !ignored.is_empty() {
        warn!("{} apply to --model mux only; ignored", ignored.join(", "));
    }
    if model != baseline::Model::Pool && args.given("pool_size") {
        warn!("--pool-size applies to --model pool only; ignored");
    }
    info!("pollmux {}: model {name}, pid {}", env!("CARGO_PKG_VERSION"), std::process::id());
    raise_nofile();
    let options = baseline::Options {
        pool_size: args.pool_size,
        reply_delay: Duration::from_millis(args.reply_delay),
        backlog: args.backlog,
    };
    let server = match Baseline::bind(model, &args.host, &services, options) {
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
