//! The four workloads and the syscall counts. Every server is its own process,
//! every client run (`pollmux load`, `pollmux ping`) another; only the idle
//! connections and the array's reader live in this harness process.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::fanin::FanIn;
use crate::procs::{self, Load, Proc, Stats, Strace, StraceRun};
use crate::stat::{median, percentile, trimmed_mean};

/// How `make bench` is run: the full plan, or a quick look while developing.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Interleaved rounds; each figure is the median over them.
    pub rounds: usize,
    /// Target length of one measured `pollmux load` run, seconds.
    pub run_secs: f64,
    /// How long the last of the growing sizing runs (the warm-up) must last, seconds.
    pub warm_secs: f64,
    /// The same for the idle-scaling runs.
    pub idle_run_secs: f64,
    /// Connection counts of the echo workload.
    pub conns: Vec<u64>,
    /// The Rust servers of the echo workload.
    pub echo_servers: Vec<Server>,
    /// Connection counts (of `conns`) at which the echo workload also runs the
    /// Python reference servers (`PYTHON_SERVERS`).
    pub python_conns: Vec<u64>,
    /// Idle connection counts of the idle-scaling workload.
    pub idle: Vec<u64>,
    /// Pings per `pollmux ping` run.
    pub pings: u64,
    /// Values served by tcp-array (and by the blocking floor).
    pub array_len: usize,
    /// Messages per connection of each strace'd run at 100 connections.
    pub strace_msgs: u64,
    /// Connection counts of the open-loop latency-against-load curves.
    pub curve_conns: Vec<u64>,
    /// Their offered loads, as fractions of tokio's closed-loop maximum.
    pub curve_levels: Vec<f64>,
    /// Seconds of measured messages per open-loop run.
    pub curve_secs: f64,
    /// The servers drawn.
    pub curve_servers: Vec<Server>,
    /// Levels measured over `curve_target_rounds` rounds (the targets' levels).
    pub curve_target_levels: Vec<f64>,
    /// Rounds at those levels (every other level: one).
    pub curve_target_rounds: usize,
    /// The servers measured more than once at those levels.
    pub curve_target_servers: Vec<Server>,
    /// Servers of the churn workload.
    pub churn_servers: Vec<Server>,
    /// Target length of one measured churn run, seconds.
    pub churn_secs: f64,
    /// Servers of the UDP fan-in.
    pub fan_in_servers: Vec<Server>,
    /// Sender socket counts of the UDP fan-in.
    pub fan_in_senders: Vec<u64>,
    /// Seconds per fan-in run.
    pub fan_in_secs: f64,
    /// Rounds of the fan-in.
    pub fan_in_rounds: usize,
    /// Servers of the slow-handler workload.
    pub slow_servers: Vec<Server>,
    /// Their `--reply-delay`, milliseconds.
    pub slow_delay_ms: u64,
}

impl Plan {
    /// What `make bench` runs.
    pub fn full() -> Plan {
        Plan {
            rounds: 5,
            run_secs: 1.0,
            warm_secs: 0.3,
            idle_run_secs: 0.6,
            conns: vec![1, 10, 100, 1000],
            echo_servers: ECHO_SERVERS.to_vec(),
            python_conns: vec![1, 100, 1000],
            idle: vec![0, 1_000, 10_000],
            pings: 5_000,
            array_len: 50_000_000,
            strace_msgs: 200,
            curve_conns: vec![100, 1000],
            curve_levels: vec![0.1, 0.25, 0.5, 0.65, 0.8, 0.9, 1.0, 1.15, 1.3, 1.5],
            curve_secs: 1.0,
            curve_servers: CURVE_SERVERS.to_vec(),
            curve_target_levels: vec![0.5, 0.8],
            curve_target_rounds: 3,
            curve_target_servers: vec![BACKENDS[0], BACKENDS[1], BACKENDS[2], Server::Tokio],
            churn_servers: ECHO_SERVERS.to_vec(),
            churn_secs: 0.5,
            fan_in_servers: FAN_IN_SERVERS.to_vec(),
            fan_in_senders: vec![1, 16, 64],
            fan_in_secs: 1.0,
            fan_in_rounds: 3,
            slow_servers: SLOW_SERVERS.to_vec(),
            slow_delay_ms: 1000,
        }
    }

    /// A fast pass over everything (`cargo bench --bench bench -- --quick`).
    pub fn quick() -> Plan {
        Plan {
            rounds: 1,
            run_secs: 0.2,
            idle_run_secs: 0.2,
            pings: 500,
            strace_msgs: 50,
            curve_conns: vec![100],
            curve_levels: vec![0.1, 0.5, 0.8, 1.2],
            curve_secs: 0.25,
            curve_target_rounds: 1,
            churn_secs: 0.2,
            fan_in_secs: 0.25,
            fan_in_rounds: 1,
            ..Plan::full()
        }
    }

    /// The bench's self-check (no `--bench`, as under `cargo test --all-targets`):
    /// the newer workloads on a few servers, each for a moment, and the echo
    /// workload on two Rust servers and the Python ones.
    pub fn smoke() -> Plan {
        Plan {
            rounds: 1,
            run_secs: 0.1,
            warm_secs: 0.05,
            conns: vec![1, 10],
            echo_servers: vec![BACKENDS[0], THREADS],
            python_conns: vec![1, 10],
            curve_conns: vec![10],
            curve_levels: vec![0.1, 0.5],
            curve_secs: 0.1,
            curve_servers: vec![BACKENDS[0], Server::Model("sequential"), Server::Tokio],
            curve_target_rounds: 1,
            churn_servers: vec![BACKENDS[0], THREADS],
            churn_secs: 0.1,
            fan_in_servers: vec![BACKENDS[0], Server::BlockingUdp],
            fan_in_senders: vec![1, 4],
            fan_in_secs: 0.1,
            fan_in_rounds: 1,
            slow_servers: vec![
                BACKENDS[0],
                Server::Model("sequential"),
                Server::Python("poll_server"),
            ],
            slow_delay_ms: 200,
            ..Plan::quick()
        }
    }
}

/// A server under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Server {
    /// `pollmux serve --backend B`.
    Mux(&'static str),
    /// `pollmux serve --model M`.
    Model(&'static str),
    /// `python3 examples/servers/S.py`: a Python reference server.
    Python(&'static str),
    /// The tokio `current_thread` peer.
    Tokio,
    /// This harness's blocking recvfrom/sendto loop (UDP ping floor).
    BlockingUdp,
    /// The tokio `current_thread` UDP peer.
    TokioUdp,
    /// This harness's blocking `send` of the array (array floor).
    BlockingArray,
}

/// The pollmux backends.
pub const BACKENDS: [Server; 3] =
    [Server::Mux("poll"), Server::Mux("select"), Server::Mux("epoll")];
/// Every TCP echo server, in table order.
pub const ECHO_SERVERS: [Server; 7] = [
    Server::Mux("poll"),
    Server::Mux("select"),
    Server::Mux("epoll"),
    Server::Model("sequential"),
    Server::Model("threads"),
    Server::Model("pool"),
    Server::Tokio,
];
/// The Python reference servers (examples/servers/), in table order.
pub const PYTHON_SERVERS: [Server; 3] =
    [Server::Python("sequential"), Server::Python("threaded"), Server::Python("poll_server")];
/// The reference every echo figure is divided by.
pub const THREADS: Server = Server::Model("threads");
/// Servers of the idle-scaling workload: the backends, and two references.
pub const IDLE_SERVERS: [Server; 5] = [
    Server::Mux("poll"),
    Server::Mux("select"),
    Server::Mux("epoll"),
    Server::Model("threads"),
    Server::Tokio,
];

impl Server {
    /// The name in tables and plots.
    pub fn name(self) -> &'static str {
        match self {
            Server::Mux(b) => b,
            Server::Model(m) => m,
            Server::Python("sequential") => "python sequential",
            Server::Python("threaded") => "python threaded",
            Server::Python(_) => "python poll",
            Server::Tokio => "tokio",
            Server::BlockingUdp => "blocking recvfrom/sendto",
            Server::TokioUdp => "tokio UDP",
            Server::BlockingArray => "blocking send",
        }
    }

    /// A longer description, for the tables' legends.
    pub fn describe(self) -> String {
        match self {
            Server::Mux(b) => format!("`pollmux serve --backend {b}`"),
            Server::Model(m) => format!("`pollmux serve --model {m}`"),
            Server::Python(s) => {
                let how = match s {
                    "sequential" => "one client at a time",
                    "threaded" => "a thread per client",
                    _ => "one `select.poll()` loop, non-blocking sockets",
                };
                format!("`{} examples/servers/{s}.py` ({how}; CPython)", procs::PYTHON)
            }
            Server::Tokio => "tokio `current_thread` echo (benches/bench/peers.rs)".into(),
            Server::BlockingUdp => "blocking recvfrom/sendto loop (benches/bench/peers.rs)".into(),
            Server::TokioUdp => {
                "tokio `current_thread` UDP recv_from/send_to loop (benches/bench/peers.rs)".into()
            }
            Server::BlockingArray => {
                "one blocking send(2) of the buffer (benches/bench/peers.rs)".into()
            }
        }
    }

    /// Most connections it can hold at once, if limited (select: FD_SETSIZE; sequential: one).
    pub fn max_conns(self) -> Option<u64> {
        match self {
            Server::Mux("select") => Some(1_000),
            Server::Model("sequential") | Server::Python("sequential") => Some(1),
            _ => None,
        }
    }

    /// Starts it with `service` on a free port.
    pub fn start(self, service: &str, stats: bool, array_len: usize) -> Result<Proc, String> {
        self.start_on(service, stats, array_len, None)
    }

    /// The same, every thread of it on `cpu` if given.
    pub fn start_on(
        self,
        service: &str,
        stats: bool,
        array_len: usize,
        cpu: Option<usize>,
    ) -> Result<Proc, String> {
        let len = array_len.to_string();
        let extra = match self {
            // The default --max-conns (10,000) would refuse the active connection
            // beside 10,000 idle ones.
            Server::Mux(_) if stats => {
                vec!["--array-len", len.as_str(), "--max-conns", "20000", "--stats"]
            }
            Server::Mux(_) => vec!["--array-len", len.as_str(), "--max-conns", "20000"],
            _ => Vec::new(),
        };
        let mut command = self.command(service, &extra, array_len);
        if let Some(cpu) = cpu {
            procs::pin(&mut command, cpu);
        }
        Proc::start(self.name(), command, &[service])
    }

    /// The command that starts it with `service` on a free port, and `extra`
    /// flags (pollmux and the Python servers; the peers take none).
    pub fn command(self, service: &str, extra: &[&str], array_len: usize) -> Command {
        match self {
            // pollmux_serve passes `--udp-rate 0`: every UDP load comes from one address.
            Server::Mux(backend) => procs::pollmux_serve(backend, &[service], extra),
            Server::Model(model) => procs::pollmux_model(model, service, extra),
            Server::Python(script) => procs::python_server(script, service, extra),
            Server::Tokio => procs::peer("--tokio-echo-server", &["127.0.0.1:0"]),
            Server::BlockingUdp => procs::peer("--blocking-udp-pong", &["127.0.0.1:0"]),
            Server::TokioUdp => procs::peer("--tokio-udp-pong", &["127.0.0.1:0"]),
            Server::BlockingArray => {
                procs::peer("--blocking-array-server", &["127.0.0.1:0", &array_len.to_string()])
            }
        }
    }
}

/// Medians over rounds of one (server, configuration).
#[derive(Debug, Clone, Default)]
pub struct EchoCell {
    /// Median round trip, µs.
    pub p50: f64,
    /// 99th-percentile round trip, µs.
    pub p99: f64,
    /// 99.9th-percentile round trip, µs.
    pub p999: f64,
    /// Messages per second, all connections together.
    pub msgs_per_sec: f64,
    /// Messages per connection of each measured run.
    pub msgs: u64,
}

impl EchoCell {
    /// The medians of `runs`, each of `msgs` messages per connection.
    fn from_runs(runs: &[Load], msgs: u64) -> EchoCell {
        EchoCell {
            p50: median(runs.iter().map(|r| r.p50)),
            p99: median(runs.iter().map(|r| r.p99)),
            p999: median(runs.iter().map(|r| r.p999)),
            msgs_per_sec: median(runs.iter().map(|r| r.msgs_per_sec)),
            msgs,
        }
    }
}

/// A figure, or why there is none (`n/a: ...`, `failed: ...`).
pub type Cell<T> = Result<T, String>;

/// Messages per connection of the warm-up that precedes every measured run.
const WARMUP_PER_CONN: u64 = 10;

/// Finds how many messages per connection make a `secs`-long run at `conns`
/// connections, by growing runs (8x each) that double as the warm-up, until one
/// lasts `plan.warm_secs` (0.3 s): shorter runs start cold and read slow. Returns
/// that count and the last probe.
pub fn size_run(
    plan: &Plan,
    addr: SocketAddr,
    conns: u64,
    secs: f64,
    cpu: Option<usize>,
) -> Result<(u64, Load), String> {
    let mut per_conn = (200 / conns).max(20);
    loop {
        let probe = procs::load(addr, conns, per_conn, WARMUP_PER_CONN, cpu)?;
        let took = probe.msgs as f64 / probe.msgs_per_sec.max(1.0);
        if took >= plan.warm_secs || per_conn >= 10_000_000 {
            let want = (probe.msgs_per_sec * secs).ceil() as u64;
            return Ok((want.div_ceil(conns).max(20), probe));
        }
        per_conn *= 8;
    }
}

/// One measured run: warm-up, then `msgs` messages per connection.
/// `cpu`: the CPU the client is pinned to, if any.
fn measured(addr: SocketAddr, conns: u64, msgs: u64, cpu: Option<usize>) -> Result<Load, String> {
    procs::load(addr, conns, msgs, WARMUP_PER_CONN, cpu)
}

/// Workload 1: TCP echo at each connection count, every server, interleaved rounds.
#[derive(Debug, Default)]
pub struct EchoResults {
    /// (server, connections) -> medians of its measured runs, or why there are none.
    pub cells: HashMap<(Server, u64), Cell<EchoCell>>,
    /// One connection, server and client free to run on any CPU (one run each):
    /// what the pinning of the 1-connection runs takes out.
    pub unpinned: Vec<(Server, Cell<Load>)>,
    /// The CPU the 1-connection runs were pinned to.
    pub pinned_cpu: Option<usize>,
}

/// Servers compared unpinned at one connection, for the record.
const UNPINNED_CHECK: [Server; 2] = [Server::Mux("epoll"), THREADS];

/// Workload 1: one connection pinned to one CPU, then the other counts unpinned.
pub fn echo(plan: &Plan, log: &mut dyn FnMut(&str)) -> EchoResults {
    let mut results = EchoResults { pinned_cpu: procs::single_cpu(), ..EchoResults::default() };
    // One connection is a serial ping-pong: server and client share one CPU, so
    // no round trip waits for an idle CPU to wake (see `procs::single_cpu`).
    let (single, multi): (Vec<u64>, Vec<u64>) = plan.conns.iter().partition(|&&c| c == 1);
    if !single.is_empty() {
        echo_phase(plan, &single, results.pinned_cpu, &mut results, log);
    }
    if !multi.is_empty() {
        echo_phase(plan, &multi, None, &mut results, log);
    }
    results
}

/// Starts every echo server (pinned to `cpu` if given), runs `levels`, stops them.
/// The Python servers run at the levels of `plan.python_conns` only.
fn echo_phase(
    plan: &Plan,
    levels: &[u64],
    cpu: Option<usize>,
    results: &mut EchoResults,
    log: &mut dyn FnMut(&str),
) {
    let mut servers = plan.echo_servers.clone();
    let python_levels: Vec<u64> =
        levels.iter().copied().filter(|c| plan.python_conns.contains(c)).collect();
    if !python_levels.is_empty() {
        match procs::python_version() {
            Ok(_) => servers.extend(PYTHON_SERVERS),
            Err(why) => {
                log(&format!("  the Python servers: {why}"));
                for server in PYTHON_SERVERS {
                    for &conns in &python_levels {
                        results.cells.insert((server, conns), Err(format!("n/a: {why}")));
                    }
                }
            }
        }
    }
    let mut procs: Vec<(Server, Proc)> = Vec::new();
    for server in servers {
        match server.start_on("tcp-echo", false, 0, cpu) {
            Ok(p) => procs.push((server, p)),
            Err(e) => {
                log(&format!("  {}: cannot start: {e}", server.name()));
                for &conns in levels {
                    if matches!(server, Server::Python(_)) && !python_levels.contains(&conns) {
                        continue;
                    }
                    let why = format!("failed to start: {}", first_line(&e));
                    results.cells.insert((server, conns), Err(why));
                }
            }
        }
    }
    if cpu.is_none() && plan.conns.contains(&1) {
        for (server, proc) in procs.iter().filter(|(s, _)| UNPINNED_CHECK.contains(s)) {
            let addr = proc.addr("tcp-echo");
            let run = size_run(plan, addr, 1, plan.run_secs, None)
                .and_then(|(msgs, _)| measured(addr, 1, msgs, None));
            results.unpinned.push((*server, run.map_err(|e| first_line(&e).to_string())));
        }
    }
    for &conns in levels {
        let started = Instant::now();
        // Sizing runs double as each server's warm-up at this connection count.
        let mut sized: Vec<(Server, SocketAddr, u64)> = Vec::new();
        for (server, proc) in &procs {
            if matches!(server, Server::Python(_)) && !python_levels.contains(&conns) {
                continue;
            }
            if let Some(limit) = server.max_conns()
                && conns > limit
            {
                let why = format!("n/a: {} serves at most {limit} connection(s)", server.name());
                results.cells.insert((*server, conns), Err(why));
                continue;
            }
            let addr = proc.addr("tcp-echo");
            match size_run(plan, addr, conns, plan.run_secs, cpu) {
                Ok((msgs, _)) => sized.push((*server, addr, msgs)),
                Err(e) => {
                    log(&format!("  {} at {conns} conns: {e}", server.name()));
                    let why = format!("failed: {}", first_line(&e));
                    results.cells.insert((*server, conns), Err(why));
                }
            }
        }
        let mut runs: HashMap<Server, Vec<Load>> = HashMap::new();
        let mut errors: HashMap<Server, String> = HashMap::new();
        for _round in 0..plan.rounds {
            for &(server, addr, msgs) in &sized {
                match measured(addr, conns, msgs, cpu) {
                    Ok(load) => runs.entry(server).or_default().push(load),
                    Err(e) => {
                        log(&format!("  {} at {conns} conns: {e}", server.name()));
                        errors.insert(server, first_line(&e).to_string());
                    }
                }
            }
        }
        for &(server, _, msgs) in &sized {
            let cell = match runs.get(&server) {
                Some(r) if !r.is_empty() => Ok(EchoCell::from_runs(r, msgs)),
                _ => Err(format!("failed: {}", errors.get(&server).cloned().unwrap_or_default())),
            };
            results.cells.insert((server, conns), cell);
        }
        log(&format!("  {conns} conns: {:.1} s", started.elapsed().as_secs_f64()));
    }
    for (server, mut proc) in procs {
        if !proc.alive() {
            log(&format!("  {} died:\n{}", server.name(), procs::tail(&proc.stderr(), 1500)));
        }
        proc.stop(Duration::from_secs(5));
    }
}

/// The first line of an error, for a table cell.
pub fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

/// Workload 2: UDP ping round trips (µs), per server, medians over rounds.
#[derive(Debug, Clone, Default)]
pub struct PingCell {
    /// Median round trip, µs.
    pub p50: f64,
    /// 99th-percentile round trip, µs.
    pub p99: f64,
    /// Mean of the round trips between p5 and p95.
    pub mean: f64,
    /// Pings sent, all rounds together.
    pub sent: u64,
    /// Replies received, all rounds together.
    pub received: u64,
}

/// Workload 2: every UDP server and its pings on one CPU; a warm-up, then the rounds.
pub fn udp(plan: &Plan, log: &mut dyn FnMut(&str)) -> HashMap<Server, Cell<PingCell>> {
    let servers = [BACKENDS[0], BACKENDS[1], BACKENDS[2], Server::BlockingUdp];
    let cpu = procs::single_cpu();
    let mut results = HashMap::new();
    let mut procs = Vec::new();
    for server in servers {
        match server.start_on("udp-ping", false, 0, cpu) {
            Ok(p) => procs.push((server, p)),
            Err(e) => {
                results.insert(server, Err(format!("failed to start: {}", first_line(&e))));
            }
        }
    }
    let mut runs: HashMap<Server, Vec<procs::Ping>> = HashMap::new();
    for (server, proc) in &procs {
        // warm-up
        if let Err(e) = procs::ping(proc.addr("udp-ping"), plan.pings / 5, 64, cpu) {
            log(&format!("  {} warm-up: {e}", server.name()));
        }
    }
    for _ in 0..plan.rounds {
        for (server, proc) in &procs {
            match procs::ping(proc.addr("udp-ping"), plan.pings, 64, cpu) {
                Ok(ping) => runs.entry(*server).or_default().push(ping),
                Err(e) => {
                    log(&format!("  {}: {e}", server.name()));
                    results.insert(*server, Err(format!("failed: {}", first_line(&e))));
                }
            }
        }
    }
    for (server, proc) in procs {
        proc.stop(Duration::from_secs(5));
        if let Some(r) = runs.get(&server).filter(|r| !r.is_empty()) {
            results.insert(
                server,
                Ok(PingCell {
                    p50: median(r.iter().map(|p| percentile(&p.rtts_us, 0.5))),
                    p99: median(r.iter().map(|p| percentile(&p.rtts_us, 0.99))),
                    mean: median(r.iter().map(|p| trimmed_mean(&p.rtts_us, 0.05, 0.95))),
                    sent: r.iter().map(|p| p.sent).sum(),
                    received: r.iter().map(|p| p.received).sum(),
                }),
            );
        }
    }
    results
}

/// Workload 3: one active connection's round trip beside idle ones.
#[derive(Debug, Default)]
pub struct IdleResults {
    /// (server, idle connections) -> medians of the active connection's runs.
    pub cells: HashMap<(Server, u64), Cell<EchoCell>>,
    /// server -> (idle connections it was measured at, server RSS growth per idle connection, bytes), per round.
    pub rss_per_conn: HashMap<Server, Vec<(u64, f64)>>,
}

/// Open descriptors of `pid`.
fn open_fds(pid: i32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

/// Opens idle connections until `conns` holds `target`, then waits until the
/// server holds `base_fds + target` descriptors (it has accepted them all).
fn open_idle(
    proc: &Proc,
    addr: SocketAddr,
    conns: &mut Vec<TcpStream>,
    target: u64,
    base_fds: usize,
) -> Result<(), String> {
    while (conns.len() as u64) < target {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
            .map_err(|e| format!("idle connection {}: {e}", conns.len() + 1))?;
        conns.push(stream);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let fds = open_fds(proc.pid()).unwrap_or(0);
        if fds >= base_fds + target as usize {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "server holds {fds} descriptors, expected {} after {target} idle connections",
                base_fds + target as usize
            ));
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Workload 3: each round, a fresh server per kind, measured at each idle count in turn.
pub fn idle(plan: &Plan, log: &mut dyn FnMut(&str)) -> IdleResults {
    let mut results = IdleResults::default();
    let mut runs: HashMap<(Server, u64), Vec<Load>> = HashMap::new();
    let mut msgs_of: HashMap<(Server, u64), u64> = HashMap::new();
    let mut errors: HashMap<(Server, u64), String> = HashMap::new();
    let cpu = procs::single_cpu();
    for round in 0..plan.rounds {
        for server in IDLE_SERVERS {
            let started = Instant::now();
            let proc = match server.start_on("tcp-echo", false, 0, cpu) {
                Ok(p) => p,
                Err(e) => {
                    for &n in &plan.idle {
                        errors.insert((server, n), format!("failed to start: {}", first_line(&e)));
                    }
                    continue;
                }
            };
            let addr = proc.addr("tcp-echo");
            let mut conns: Vec<TcpStream> = Vec::new();
            let mut base: Option<(usize, u64)> = None; // (fds, RSS KiB) at 0 idle, after its run
            for &n in &plan.idle {
                if let Some(limit) = server.max_conns()
                    && n > limit
                {
                    let why = format!("n/a: {} holds at most ~{limit} connections", server.name());
                    errors.insert((server, n), why);
                    continue;
                }
                if let Some((fds, _)) = base
                    && let Err(e) = open_idle(&proc, addr, &mut conns, n, fds)
                {
                    log(&format!("  {} with {n} idle: {e}", server.name()));
                    errors.insert((server, n), format!("failed: {}", first_line(&e)));
                    break;
                }
                let sized = match msgs_of.get(&(server, n)) {
                    Some(&m) => Ok(m),
                    None => size_run(plan, addr, 1, plan.idle_run_secs, cpu).map(|(m, _)| m),
                };
                let result = sized.and_then(|m| {
                    msgs_of.insert((server, n), m);
                    measured(addr, 1, m, cpu)
                });
                match result {
                    Ok(load) => runs.entry((server, n)).or_default().push(load),
                    Err(e) => {
                        log(&format!("  {} with {n} idle: {e}", server.name()));
                        errors.insert((server, n), format!("failed: {}", first_line(&e)));
                    }
                }
                if base.is_none() {
                    // Let the load connection's close reach the server before counting.
                    thread::sleep(Duration::from_millis(50));
                    base = Some((open_fds(proc.pid()).unwrap_or(0), proc.rss_kib().unwrap_or(0)));
                } else if n > 0
                    && n == conns.len() as u64
                    && let (Some((_, before)), Some(now)) = (base, proc.rss_kib())
                {
                    let per_conn = (now as f64 - before as f64) * 1024.0 / n as f64;
                    results.rss_per_conn.entry(server).or_default().push((n, per_conn));
                }
            }
            drop(conns);
            proc.stop(Duration::from_secs(5));
            log(&format!(
                "  round {} {}: {:.1} s",
                round + 1,
                server.name(),
                started.elapsed().as_secs_f64()
            ));
        }
    }
    for server in IDLE_SERVERS {
        for &n in &plan.idle {
            let cell = match runs.get(&(server, n)).filter(|r| !r.is_empty()) {
                Some(r) => Ok(EchoCell::from_runs(r, msgs_of[&(server, n)])),
                None => Err(errors.get(&(server, n)).cloned().unwrap_or_else(|| "failed".into())),
            };
            results.cells.insert((server, n), cell);
        }
    }
    results
}

/// Workload 4: one request for the whole array.
#[derive(Debug, Clone, Default)]
pub struct ArrayRun {
    /// Response bytes (header included).
    pub bytes: u64,
    /// From the request's send to the response's last byte.
    pub secs: f64,
    /// Server VmRSS, KiB: after start, before the request.
    pub rss_before: u64,
    /// Server VmRSS, KiB: the largest sampled while it sent (at least `rss_before`).
    pub rss_peak: u64,
    /// Server VmRSS, KiB: 50 ms after the reply was read and the connection closed.
    pub rss_after: u64,
}

impl ArrayRun {
    /// Throughput: response bytes over `secs`, in GB (10^9 bytes) per second.
    pub fn gb_per_sec(&self) -> f64 {
        self.bytes as f64 / self.secs / 1e9
    }
}

/// Medians over rounds.
#[derive(Debug, Clone, Default)]
pub struct ArrayCell {
    /// Throughput, GB (10^9 bytes) per second.
    pub gb_per_sec: f64,
    /// From the request's send to the response's last byte, seconds.
    pub secs: f64,
    /// Response bytes, header included (from the first round).
    pub bytes: u64,
    /// Server VmRSS after start, before the request, MiB.
    pub rss_before_mib: f64,
    /// Server VmRSS at its peak while sending, MiB.
    pub rss_peak_mib: f64,
    /// Server VmRSS after the reply, MiB.
    pub rss_after_mib: f64,
    /// Peak minus before, MiB: the largest growth seen in any round.
    pub growth_mib: f64,
}

/// Asks `addr` for values 0..len and reads the reply, checking its length and sampled values,
/// while sampling `pid`'s RSS.
fn fetch_array(pid: i32, addr: SocketAddr, len: usize) -> Result<ArrayRun, String> {
    let rss_before = procs::rss_kib(pid).ok_or("no VmRSS")?;
    let mut stream = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(Duration::from_secs(60))).map_err(|e| e.to_string())?;
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let stop = Arc::clone(&stop);
        thread::spawn(move || {
            let mut peak = 0;
            while !stop.load(Ordering::Relaxed) {
                peak = peak.max(procs::rss_kib(pid).unwrap_or(0));
                thread::sleep(Duration::from_millis(2));
            }
            peak
        })
    };
    let request = format!("0:{len}");
    let mut frame = (request.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(request.as_bytes());
    let started = Instant::now();
    let result = (|| -> Result<u64, String> {
        stream.write_all(&frame).map_err(|e| format!("send request: {e}"))?;
        let mut head = [0u8; 5];
        stream.read_exact(&mut head).map_err(|e| format!("read header: {e}"))?;
        let body = u32::from_be_bytes(head[..4].try_into().unwrap()) as u64 - 1;
        if head[4] != 0 || body != len as u64 * 8 {
            return Err(format!(
                "reply status {} with {body} bytes, expected 0 with {}",
                head[4],
                len * 8
            ));
        }
        let mut buf = vec![0u8; 4 << 20];
        let mut got: u64 = 0;
        while got < body {
            let want = buf.len().min((body - got) as usize);
            let n = stream
                .read(&mut buf[..want])
                .map_err(|e| format!("read after {got} bytes: {e}"))?;
            if n == 0 {
                return Err(format!("EOF after {got} of {body} bytes"));
            }
            // Spot-check the value that starts this read, if one does.
            let skew = (8 - got % 8) % 8;
            if (skew as usize) + 8 <= n {
                let index = (got + skew) / 8;
                let at = skew as usize;
                let value = f64::from_le_bytes(buf[at..at + 8].try_into().unwrap());
                if value != index as f64 {
                    return Err(format!("value {index} is {value}"));
                }
            }
            got += n as u64;
        }
        Ok(5 + body)
    })();
    let secs = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let rss_peak = sampler.join().unwrap_or(0);
    let bytes = result?;
    drop(stream);
    thread::sleep(Duration::from_millis(50));
    let rss_after = procs::rss_kib(pid).unwrap_or(0);
    Ok(ArrayRun { bytes, secs, rss_before, rss_peak: rss_peak.max(rss_before), rss_after })
}

/// Workload 4: each round, a fresh server of each kind answers one whole-array request.
pub fn array(plan: &Plan, log: &mut dyn FnMut(&str)) -> HashMap<Server, Cell<ArrayCell>> {
    let servers = [BACKENDS[0], BACKENDS[1], BACKENDS[2], Server::BlockingArray];
    let mut runs: HashMap<Server, Vec<ArrayRun>> = HashMap::new();
    let mut errors: HashMap<Server, String> = HashMap::new();
    for round in 0..plan.rounds {
        for server in servers {
            let result = server.start("tcp-array", false, plan.array_len).and_then(|proc| {
                // The first request to a fresh server is the measured one.
                let run = fetch_array(proc.pid(), proc.addr("tcp-array"), plan.array_len);
                proc.stop(Duration::from_secs(10));
                run
            });
            match result {
                Ok(run) => {
                    log(&format!(
                        "  round {} {}: {:.2} GB/s, RSS {} -> peak {} -> {} MiB",
                        round + 1,
                        server.name(),
                        run.gb_per_sec(),
                        run.rss_before / 1024,
                        run.rss_peak / 1024,
                        run.rss_after / 1024
                    ));
                    runs.entry(server).or_default().push(run);
                }
                Err(e) => {
                    log(&format!("  {}: {e}", server.name()));
                    errors.insert(server, format!("failed: {}", first_line(&e)));
                }
            }
        }
    }
    let mib = |kib: u64| kib as f64 / 1024.0;
    servers
        .into_iter()
        .map(|server| {
            let cell = match runs.get(&server).filter(|r| !r.is_empty()) {
                Some(r) => Ok(ArrayCell {
                    gb_per_sec: median(r.iter().map(ArrayRun::gb_per_sec)),
                    secs: median(r.iter().map(|x| x.secs)),
                    bytes: r[0].bytes,
                    rss_before_mib: median(r.iter().map(|x| mib(x.rss_before))),
                    rss_peak_mib: median(r.iter().map(|x| mib(x.rss_peak))),
                    rss_after_mib: median(r.iter().map(|x| mib(x.rss_after))),
                    growth_mib: r
                        .iter()
                        .map(|x| mib(x.rss_peak) - mib(x.rss_before))
                        .fold(f64::MIN, f64::max),
                }),
                None => Err(errors.get(&server).cloned().unwrap_or_else(|| "failed".into())),
            };
            (server, cell)
        })
        .collect()
}

/// Syscalls per echoed message at 100 connections.
#[derive(Debug, Clone, Default)]
pub struct SyscallCell {
    /// Where the counts come from.
    pub source: &'static str,
    /// Messages echoed in the counted window.
    pub messages: u64,
    /// Calls counted, by name ("wait", "recv", "send", or strace's syscall names).
    pub calls: Vec<(String, u64)>,
    /// All calls counted.
    pub total: u64,
    /// Ready events per wait (`--stats` only).
    pub events_per_wait: Option<f64>,
}

impl SyscallCell {
    /// Syscalls per echoed message: `total / messages`.
    pub fn per_message(&self) -> f64 {
        self.total as f64 / self.messages.max(1) as f64
    }
}

/// From `--stats`: a fresh server, one load run of `msgs` at `conns`, SIGTERM,
/// the totals it prints at exit. Messages = bytes-in / 64.
pub fn syscalls_from_stats(server: Server, conns: u64, msgs: u64) -> Result<SyscallCell, String> {
    let proc = server.start("tcp-echo", true, 0)?;
    let load = measured(proc.addr("tcp-echo"), conns, msgs, None);
    let stderr = proc.stop(Duration::from_secs(10));
    load?;
    let stats: Stats = procs::last_stats(&stderr)
        .ok_or_else(|| format!("no stats line at exit:\n{}", procs::tail(&stderr, 1000)))?;
    let (waits, recvs, sends) = (stats.get("waits"), stats.get("recvs"), stats.get("sends"));
    Ok(SyscallCell {
        source: "--stats",
        messages: stats.get("bytes-in") / 64,
        calls: vec![("wait".into(), waits), ("recv".into(), recvs), ("send".into(), sends)],
        total: waits + recvs + sends,
        events_per_wait: Some(stats.get("ready") as f64 / waits.max(1) as f64),
    })
}

/// From `strace -c -f` attached to a fresh server for one load run of `msgs`
/// at `conns` (after a warm-up run it does not count).
pub fn syscalls_from_strace(server: Server, conns: u64, msgs: u64) -> Result<SyscallCell, String> {
    let proc = server.start("tcp-echo", false, 0)?;
    let addr = proc.addr("tcp-echo");
    let out = std::env::temp_dir().join(format!("pollmux-bench-strace-{}.txt", std::process::id()));
    let trace = StraceRun::attach(proc.pid(), &out)?;
    let load = procs::load(addr, conns, msgs, WARMUP_PER_CONN, None);
    let counted: Result<Strace, String> = trace.finish();
    proc.stop(Duration::from_secs(5));
    let load = load?;
    let strace = counted?;
    let mut calls = strace.calls;
    calls.sort_by_key(|c| std::cmp::Reverse(c.1));
    Ok(SyscallCell {
        source: "strace -c -f",
        messages: load.msgs + WARMUP_PER_CONN * conns,
        calls,
        total: strace.total,
        events_per_wait: None,
    })
}

// ------------------------------------------------------------ open-loop curves

/// Servers of the latency-against-load curves: every echo server.
pub const CURVE_SERVERS: [Server; 7] = ECHO_SERVERS;
/// The threads of `pollmux serve --model pool`.
pub const POOL_THREADS: u64 = 4;
/// Open-loop runs whose achieved rate is below this share of the offered one
/// count as saturated; after two such levels a server is not pushed further.
pub const SATURATED: f64 = 0.9;

/// One point of a curve: one open-loop run, or the medians of several.
#[derive(Debug, Clone, Default)]
pub struct CurvePoint {
    /// The rate asked for, messages/s.
    pub offered: f64,
    /// The rate answered, messages/s.
    pub achieved: f64,
    /// Median latency from when each message was due, µs.
    pub p50: f64,
    /// 99th percentile, µs.
    pub p99: f64,
    /// The client's own lateness (due to queued), p99, µs: its share of the figures.
    pub lag_p99: f64,
}

impl CurvePoint {
    /// Whether the server fell behind the offered load.
    pub fn saturated(&self) -> bool {
        self.achieved < SATURATED * self.offered
    }
}

/// The curves at one connection count.
#[derive(Debug, Clone, Default)]
pub struct Curve {
    /// Connections of every run.
    pub conns: u64,
    /// The rate the levels are fractions of: tokio's closed-loop maximum at
    /// this connection count (or, without it, the largest server's).
    pub reference: f64,
    /// Which server `reference` is from.
    pub reference_server: Option<Server>,
    /// Each server's closed-loop maximum at this connection count, messages/s.
    pub max: HashMap<Server, Cell<f64>>,
    /// The offered loads, as fractions of `reference`.
    pub levels: Vec<f64>,
    /// (server, level index) -> the point, or why there is none.
    pub points: HashMap<(Server, usize), Cell<CurvePoint>>,
}

/// Each server's closed-loop messages/s at `conns`: from the echo workload
/// if it ran there, else from a sizing probe.
fn closed_loop_max(
    plan: &Plan,
    echo: Option<&EchoResults>,
    server: Server,
    addr: SocketAddr,
    conns: u64,
) -> Cell<f64> {
    if let Some(Ok(cell)) = echo.and_then(|e| e.cells.get(&(server, conns))) {
        return Ok(cell.msgs_per_sec);
    }
    size_run(plan, addr, conns, plan.run_secs.min(0.5), None)
        .map(|(_, probe)| probe.msgs_per_sec)
        .map_err(|e| format!("failed: {}", first_line(&e)))
}

/// Open-loop latency against offered load, at each of `plan.curve_conns`:
/// every server at each level (interleaved: every server once per level), from
/// 10% to past the reference maximum; more rounds at the target levels.
pub fn curves(plan: &Plan, echo: Option<&EchoResults>, log: &mut dyn FnMut(&str)) -> Vec<Curve> {
    let mut curves = Vec::new();
    for &conns in &plan.curve_conns {
        let started = Instant::now();
        let mut curve = Curve { conns, levels: plan.curve_levels.clone(), ..Curve::default() };
        let mut procs: Vec<(Server, Proc)> = Vec::new();
        for server in &plan.curve_servers {
            match server.start("tcp-echo", false, 0) {
                Ok(p) => {
                    let max = closed_loop_max(plan, echo, *server, p.addr("tcp-echo"), conns);
                    curve.max.insert(*server, max);
                    procs.push((*server, p));
                }
                Err(e) => {
                    let why = format!("failed to start: {}", first_line(&e));
                    curve.max.insert(*server, Err(why.clone()));
                    for level in 0..curve.levels.len() {
                        curve.points.insert((*server, level), Err(why.clone()));
                    }
                }
            }
        }
        let max_of = |s: Server| curve.max.get(&s).and_then(|m| m.as_ref().ok().copied());
        let (reference_server, reference) = match max_of(Server::Tokio) {
            Some(m) => (Some(Server::Tokio), m),
            None => plan
                .curve_servers
                .iter()
                .filter_map(|&s| Some((Some(s), max_of(s)?)))
                .fold((None, 0.0), |a, b| if b.1 > a.1 { b } else { a }),
        };
        if reference <= 0.0 {
            log(&format!("  {conns} conns: no server's maximum could be measured"));
            curves.push(curve);
            continue;
        }
        curve.reference = reference;
        curve.reference_server = reference_server;
        let mut saturated_levels: HashMap<Server, usize> = HashMap::new();
        let mut runs: HashMap<(Server, usize), Vec<Load>> = HashMap::new();
        let mut errors: HashMap<(Server, usize), String> = HashMap::new();
        for (level, &fraction) in curve.levels.iter().enumerate() {
            let rate = fraction * reference;
            let extra = plan.curve_target_levels.iter().any(|t| (t - fraction).abs() < 1e-9);
            let rounds = if extra { plan.curve_target_rounds } else { 1 };
            for round in 0..rounds {
                for (server, proc) in &procs {
                    if round > 0 && !plan.curve_target_servers.contains(server) {
                        continue;
                    }
                    if saturated_levels.get(server).copied().unwrap_or(0) >= 2 {
                        let why = format!(
                            "n/a: not run, saturated at a lower load ({} achieved < {:.0}% of offered twice)",
                            server.name(),
                            SATURATED * 100.0
                        );
                        errors.insert((*server, level), why);
                        continue;
                    }
                    let addr = proc.addr("tcp-echo");
                    match procs::load_open(addr, conns, rate, plan.curve_secs, CURVE_WARMUP) {
                        Ok(load) => runs.entry((*server, level)).or_default().push(load),
                        Err(e) => {
                            log(&format!("  {} at {rate:.0}/s, {conns} conns: {e}", server.name()));
                            errors.insert((*server, level), format!("failed: {}", first_line(&e)));
                        }
                    }
                }
            }
            for (server, _) in &procs {
                let key = (*server, level);
                let point = match runs.get(&key).filter(|r| !r.is_empty()) {
                    Some(r) => Ok(CurvePoint {
                        offered: rate,
                        achieved: median(r.iter().map(|l| l.msgs_per_sec)),
                        p50: median(r.iter().map(|l| l.p50)),
                        p99: median(r.iter().map(|l| l.p99)),
                        lag_p99: median(r.iter().map(|l| l.lag_p99)),
                    }),
                    None => Err(errors.get(&key).cloned().unwrap_or_else(|| "failed".into())),
                };
                if point.as_ref().is_ok_and(CurvePoint::saturated) || point.is_err() {
                    *saturated_levels.entry(*server).or_default() += 1;
                }
                curve.points.insert(key, point);
            }
            log(&format!(
                "  {conns} conns, {:.0}% ({rate:.0}/s): {:.1} s so far",
                fraction * 100.0,
                started.elapsed().as_secs_f64()
            ));
        }
        for (_, proc) in procs {
            proc.stop(Duration::from_secs(5));
        }
        curves.push(curve);
    }
    curves
}

/// Open-loop warm-up: messages per connection before the measured ones, at the same rate.
const CURVE_WARMUP: u64 = 5;

// ------------------------------------------------------------------- churn

/// Clients opening connections at once in the churn workload.
pub const CHURN_CONNS: u64 = 16;

/// Connection churn of one server: medians over rounds.
#[derive(Debug, Clone, Default)]
pub struct ChurnCell {
    /// Connections per second (each: connect, 64 bytes, the echo, close).
    pub per_sec: f64,
    /// Median connect-to-echo time, µs.
    pub p50: f64,
    /// 99th percentile, µs.
    pub p99: f64,
    /// Connections per client of each measured run.
    pub msgs: u64,
}

/// Connection churn: `pollmux load --churn` with `CHURN_CONNS` clients, every echo server.
pub fn churn(plan: &Plan, log: &mut dyn FnMut(&str)) -> HashMap<Server, Cell<ChurnCell>> {
    let mut results = HashMap::new();
    let mut procs = Vec::new();
    for server in &plan.churn_servers {
        match server.start("tcp-echo", false, 0) {
            Ok(p) => {
                // Sizing probe, which is also the warm-up: connections per client for run_secs.
                let addr = p.addr("tcp-echo");
                match procs::load_churn(addr, CHURN_CONNS, 50, 0) {
                    Ok(probe) => {
                        let want =
                            (probe.msgs_per_sec * plan.churn_secs / CHURN_CONNS as f64).ceil();
                        procs.push((*server, p, (want as u64).max(10)));
                    }
                    Err(e) => {
                        log(&format!("  {}: {e}", server.name()));
                        results.insert(*server, Err(format!("failed: {}", first_line(&e))));
                    }
                }
            }
            Err(e) => {
                results.insert(*server, Err(format!("failed to start: {}", first_line(&e))));
            }
        }
    }
    let mut runs: HashMap<Server, Vec<Load>> = HashMap::new();
    for _ in 0..plan.rounds {
        for (server, proc, msgs) in &procs {
            match procs::load_churn(proc.addr("tcp-echo"), CHURN_CONNS, *msgs, 2) {
                Ok(load) => runs.entry(*server).or_default().push(load),
                Err(e) => {
                    log(&format!("  {}: {e}", server.name()));
                    results.insert(*server, Err(format!("failed: {}", first_line(&e))));
                }
            }
        }
    }
    for (server, proc, msgs) in procs {
        proc.stop(Duration::from_secs(5));
        if let Some(r) = runs.get(&server).filter(|r| !r.is_empty()) {
            results.insert(
                server,
                Ok(ChurnCell {
                    per_sec: median(r.iter().map(|l| l.msgs_per_sec)),
                    p50: median(r.iter().map(|l| l.p50)),
                    p99: median(r.iter().map(|l| l.p99)),
                    msgs,
                }),
            );
        }
    }
    results
}

// ------------------------------------------------------------------ UDP fan-in

/// Servers of the UDP fan-in: the backends, the blocking loop and tokio.
pub const FAN_IN_SERVERS: [Server; 5] = [
    Server::Mux("poll"),
    Server::Mux("select"),
    Server::Mux("epoll"),
    Server::BlockingUdp,
    Server::TokioUdp,
];

/// UDP fan-in of one server at one sender count: medians over rounds.
#[derive(Debug, Clone, Default)]
pub struct FanInCell {
    /// Replies per second.
    pub per_sec: f64,
    /// Server CPU time (user + system) per reply, µs.
    pub cpu_us: f64,
    /// Datagrams given up on, all rounds together.
    pub lost: u64,
    /// Replies, all rounds together.
    pub received: u64,
}

/// One fan-in run: the harness's client process for `secs` against `proc`,
/// the server's CPU time read from /proc before and after.
fn fan_in_run(proc: &Proc, sockets: u64, secs: f64) -> Result<(FanIn, f64), String> {
    let addr = proc.addr("udp-ping");
    let before = procs::cpu_secs(proc.pid()).ok_or("no /proc/PID/stat")?;
    let command =
        procs::peer("--udp-fan-in", &[&addr.to_string(), &sockets.to_string(), &secs.to_string()]);
    let out = procs::run_captured(command, Duration::from_secs(60))?;
    let after = procs::cpu_secs(proc.pid()).ok_or("no /proc/PID/stat")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let result = stdout.lines().find_map(FanIn::parse).ok_or_else(|| {
        format!(
            "udp fan-in: {}: {}{}",
            out.status,
            stdout,
            procs::tail(&String::from_utf8_lossy(&out.stderr), 1000)
        )
    })?;
    Ok((result, after - before))
}

/// UDP fan-in: every server at each sender count, interleaved rounds.
pub fn fan_in(plan: &Plan, log: &mut dyn FnMut(&str)) -> HashMap<(Server, u64), Cell<FanInCell>> {
    let mut results = HashMap::new();
    let mut procs = Vec::new();
    for server in &plan.fan_in_servers {
        match server.start("udp-ping", false, 0) {
            Ok(p) => {
                // Warm-up, not counted.
                if let Err(e) = fan_in_run(&p, 64, plan.fan_in_secs / 4.0) {
                    log(&format!("  {} warm-up: {e}", server.name()));
                }
                procs.push((*server, p));
            }
            Err(e) => {
                for &n in &plan.fan_in_senders {
                    results
                        .insert((*server, n), Err(format!("failed to start: {}", first_line(&e))));
                }
            }
        }
    }
    let mut runs: HashMap<(Server, u64), Vec<(FanIn, f64)>> = HashMap::new();
    for _ in 0..plan.fan_in_rounds {
        for &n in &plan.fan_in_senders {
            for (server, proc) in &procs {
                match fan_in_run(proc, n, plan.fan_in_secs) {
                    Ok(run) => runs.entry((*server, n)).or_default().push(run),
                    Err(e) => {
                        log(&format!("  {} with {n} senders: {e}", server.name()));
                        results.insert((*server, n), Err(format!("failed: {}", first_line(&e))));
                    }
                }
            }
        }
    }
    for (server, proc) in procs {
        proc.stop(Duration::from_secs(5));
        for &n in &plan.fan_in_senders {
            if let Some(r) = runs.get(&(server, n)).filter(|r| !r.is_empty()) {
                results.insert(
                    (server, n),
                    Ok(FanInCell {
                        per_sec: median(r.iter().map(|(f, _)| f.per_sec())),
                        cpu_us: median(
                            r.iter().map(|(f, cpu)| cpu * 1e6 / f.received.max(1) as f64),
                        ),
                        lost: r.iter().map(|(f, _)| f.lost).sum(),
                        received: r.iter().map(|(f, _)| f.received).sum(),
                    }),
                );
            }
        }
    }
    results
}

// --------------------------------------------------------------- slow handlers

/// Clients of the slow-handler workload, all at once.
pub const SLOW_CLIENTS: usize = 5;
/// Servers of the slow-handler workload: every backend, the baselines, and the
/// Python servers (the same three designs in another language).
pub const SLOW_SERVERS: [Server; 9] = [
    Server::Mux("poll"),
    Server::Mux("select"),
    Server::Mux("epoll"),
    Server::Model("sequential"),
    Server::Model("threads"),
    Server::Model("pool"),
    Server::Python("sequential"),
    Server::Python("threaded"),
    Server::Python("poll_server"),
];

/// The slow-handler workload: per server, (seconds until the last client was
/// answered, each client's seconds), or why not.
pub type SlowResults = HashMap<Server, Cell<(f64, Vec<f64>)>>;

/// `SLOW_CLIENTS` clients connect at once to tcp-upper with a `plan.slow_delay_ms`
/// reply delay, each sends one line and reads its answer; the time until all
/// were answered, from the moment they all sent.
pub fn slow(plan: &Plan, log: &mut dyn FnMut(&str)) -> SlowResults {
    let mut results = SlowResults::new();
    let delay = plan.slow_delay_ms.to_string();
    let python = if plan.slow_servers.iter().any(|s| matches!(s, Server::Python(_))) {
        procs::python_version()
    } else {
        Ok(String::new())
    };
    for server in &plan.slow_servers {
        if let (Server::Python(_), Err(why)) = (server, &python) {
            results.insert(*server, Err(format!("n/a: {why}")));
            continue;
        }
        let command = server.command("tcp-upper", &["--reply-delay", &delay], 0);
        let cell = Proc::start(server.name(), command, &["tcp-upper"]).and_then(|proc| {
            let answered = slow_clients(proc.addr("tcp-upper"));
            proc.stop(Duration::from_secs(5));
            answered
        });
        match &cell {
            Ok((all, _)) => log(&format!("  {}: all answered after {all:.2} s", server.name())),
            Err(e) => log(&format!("  {}: {e}", server.name())),
        }
        results.insert(*server, cell.map_err(|e| format!("failed: {}", first_line(&e))));
    }
    results
}

/// The clients of the slow-handler workload: connected first, then all send
/// at once; returns the last answer's time and each client's, seconds.
pub fn slow_clients(addr: SocketAddr) -> Result<(f64, Vec<f64>), String> {
    let barrier = Arc::new(std::sync::Barrier::new(SLOW_CLIENTS + 1));
    let clients: Vec<_> = (0..SLOW_CLIENTS)
        .map(|i| {
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || -> Result<Instant, String> {
                let connected = TcpStream::connect_timeout(&addr, Duration::from_secs(10));
                barrier.wait();
                let mut stream = connected.map_err(|e| format!("client {i}: connect: {e}"))?;
                stream
                    .set_read_timeout(Some(Duration::from_secs(30)))
                    .map_err(|e| e.to_string())?;
                let line = format!("slow client {i}\n");
                stream.write_all(line.as_bytes()).map_err(|e| format!("client {i}: {e}"))?;
                let mut reply = vec![0u8; line.len()];
                stream.read_exact(&mut reply).map_err(|e| format!("client {i}: read: {e}"))?;
                if reply != line.to_uppercase().as_bytes() {
                    return Err(format!("client {i}: reply {:?}", String::from_utf8_lossy(&reply)));
                }
                Ok(Instant::now())
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    let mut each = Vec::new();
    for client in clients {
        let done = client.join().map_err(|_| "a client thread panicked".to_string())??;
        each.push(done.saturating_duration_since(start).as_secs_f64());
    }
    let all = each.iter().copied().fold(0.0, f64::max);
    Ok((all, each))
}
