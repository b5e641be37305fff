//! The flags: clap's definitions of `serve`, `ping` and `load`, and their
//! translation into the library's options. Nothing here logs: a flag that
//! cannot be honoured comes back as a message, which main.rs logs (under the
//! binary's own target, `pollmux`) before it exits with status 2.

/// The parsers of flag values.
mod values;

use std::io::IsTerminal;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use pollmux::Config;
use pollmux::baseline;
use pollmux::client::{load, ping};
use pollmux::service::array::ArrayWire;
use pollmux::service::{ServiceKind, Settings};
use pollmux::sys::BackendKind;
use pollmux::sys::net::DEFAULT_BACKLOG;
use values::{Bytes, Port, backlog, pool_size, reply_delay, seconds};

/// One single-threaded process serving UDP and TCP over poll(2), select(2) or epoll(7).
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Serve the six services; prints `listening <service> <address>` per service once bound.
    Serve(ServeArgs),
    /// UDP PING/PONG round trips to a udp-ping service, reported like ping(8).
    Ping(PingArgs),
    /// TCP load against an echo-like server: messages/s and latency percentiles, every reply byte checked.
    Load(LoadArgs),
}

/// Flags of `pollmux serve`. Each port takes a number, 0 for a free port, or `off`.
#[derive(Args, Debug)]
pub(crate) struct ServeArgs {
    /// Address or name to bind every service on (IPv4, IPv6 such as ::1, or a name).
    #[arg(long, default_value = "127.0.0.1")]
    pub(crate) host: String,
    /// The server: the event loop, or a blocking comparison server (tcp-echo and tcp-upper only).
    #[arg(long, value_enum, default_value = "mux")]
    pub(crate) model: Model,
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
pub(crate) enum Model {
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
pub(crate) struct PingArgs {
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
    /// The wait syscall the client itself uses (the crate's own wait interface).
    #[arg(long, value_enum, default_value = "poll")]
    backend: BackendKind,
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
pub(crate) struct LoadArgs {
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
    /// The wait syscall each client thread uses (the crate's own wait interface); select
    /// holds descriptors below 1024 only.
    #[arg(long, value_enum, default_value = "epoll")]
    backend: BackendKind,
}

impl ServeArgs {
    /// True when `id` (a field name: `tcp_frame`) was given on the command line.
    pub(crate) fn given(&self, id: &str) -> bool {
        self.given.iter().any(|g| g == id)
    }

    /// The event loop's configuration, or why the flags do not make one.
    pub(crate) fn into_config(self) -> Result<Config, String> {
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

    /// `--model sequential|threads|pool`: the services a comparison server
    /// serves, tcp-echo and tcp-upper, unless one is off. A port given for
    /// another service is an error rather than silently unserved.
    pub(crate) fn baseline_services(
        &self,
        model: baseline::Model,
    ) -> Result<Vec<(ServiceKind, u16)>, String> {
        let name = model.name();
        let others = [
            ("tcp_frame", self.tcp_frame),
            ("tcp_array", self.tcp_array),
            ("udp_upper", self.udp_upper),
            ("udp_ping", self.udp_ping),
        ];
        for (id, Port(asked)) in others {
            if let Some(asked) = asked.filter(|_| self.given(id)) {
                let flag = id.replace('_', "-");
                return Err(format!(
                    "--model {name} serves tcp-echo and tcp-upper only: drop --{flag} {asked}, \
                     or use --model mux"
                ));
            }
        }
        let services: Vec<(ServiceKind, u16)> =
            [(ServiceKind::TcpEcho, self.tcp_echo), (ServiceKind::TcpUpper, self.tcp_upper)]
                .into_iter()
                .filter_map(|(kind, Port(port))| Some((kind, port?)))
                .collect();
        if services.is_empty() {
            return Err(format!("--model {name} serves tcp-echo and tcp-upper, and both are off"));
        }
        Ok(services)
    }

    /// The flags given that only `--model mux` uses, as typed (`--max-conns`).
    pub(crate) fn mux_only_given(&self) -> Vec<String> {
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
        MUX_ONLY
            .iter()
            .filter(|id| self.given(id))
            .map(|id| format!("--{}", id.replace('_', "-")))
            .collect()
    }

    /// What a comparison server takes from the flags.
    pub(crate) fn baseline_options(&self) -> baseline::Options {
        baseline::Options {
            pool_size: self.pool_size,
            reply_delay: Duration::from_millis(self.reply_delay),
            backlog: self.backlog,
        }
    }
}

/// Parses the command line (clap prints help or an error and exits), noting
/// which `serve` flags were typed, so that a baseline can refuse one it cannot
/// honour even when it carries the default value.
pub(crate) fn parse() -> Cli {
    let matches = Cli::command().get_matches();
    let mut cli =
        Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.format(&mut Cli::command()).exit());
    if let (Command::Serve(args), Some(serve)) =
        (&mut cli.command, matches.subcommand_matches("serve"))
    {
        args.given = serve
            .ids()
            .filter(|id| serve.value_source(id.as_str()) == Some(ValueSource::CommandLine))
            .map(|id| id.to_string())
            .collect();
    }
    cli
}

impl PingArgs {
    /// What `ping::run` takes, or why the flags do not make it.
    pub(crate) fn into_options(self) -> Result<ping::Options, String> {
        Ok(ping::Options {
            interval: seconds("--interval", self.interval)?,
            timeout: seconds("--timeout", self.timeout)?,
            target: self.target,
            count: self.count,
            size: self.size,
            backend: self.backend,
        })
    }
}

impl LoadArgs {
    /// What `load::run` takes, or why the flags do not make it.
    pub(crate) fn into_options(self) -> Result<load::Options, String> {
        let timeout = seconds("--timeout", self.timeout)?;
        let conns = self.conns as usize;
        let (pace, msgs) = match (self.rate, self.duration) {
            (Some(rate), Some(duration)) => {
                if !(rate.is_finite() && rate > 0.0) {
                    return Err(format!(
                        "--rate takes a positive number of messages per second, got {rate}"
                    ));
                }
                let duration = seconds("--duration", duration)?;
                if duration.is_zero() {
                    return Err("--duration must be more than 0 seconds".to_string());
                }
                (load::Pace::Open { rate }, load::open_loop_msgs(rate, duration, conns))
            }
            _ if self.churn => (load::Pace::Churn, self.msgs),
            _ => (load::Pace::Closed, self.msgs),
        };
        Ok(load::Options {
            target: self.target,
            conns,
            msgs,
            pace,
            size: self.size as usize,
            expect: self.expect,
            warmup: self.warmup,
            threads: self.threads,
            idle: self.idle,
            timeout,
            backend: self.backend,
            progress: std::io::stderr().is_terminal(),
        })
    }
}
