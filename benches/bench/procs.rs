//! Child processes: the servers (each its own process on port 0, ready once it
//! printed its `listening` lines), the `pollmux load` / `pollmux ping` clients,
//! strace, and what /proc says about them.

use nix::sched::{CpuSet, sched_getaffinity, sched_setaffinity};
use nix::unistd::Pid;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use crate::process::{self, Spawned};

/// How long a server may take to print its `listening` lines (the array server
/// builds 400 MB first).
const START_DEADLINE: Duration = Duration::from_secs(120);
/// How long a client run may take before it is killed and counted as failed.
const CLIENT_DEADLINE: Duration = Duration::from_secs(120);

/// The pollmux binary cargo built beside this harness (release, under `cargo bench`).
pub fn pollmux_bin() -> &'static str {
    env!("CARGO_BIN_EXE_pollmux")
}

/// This harness's own binary, which also runs the peers (see `peers.rs`).
pub fn self_bin() -> PathBuf {
    std::env::current_exe().expect("current_exe")
}

/// A running server process: killed on drop.
pub struct Proc {
    /// The child, its output and its process id (tests/common/process.rs).
    spawned: Spawned,
    /// The address each service announced in its `listening` line, by service.
    addrs: HashMap<String, SocketAddr>,
}

impl Proc {
    /// Spawns `command` and waits until it printed `listening <service> <addr>`
    /// for each of `services`.
    pub fn start(name: &str, mut command: Command, services: &[&str]) -> Result<Proc, String> {
        let mut spawned =
            Spawned::spawn(&mut command).map_err(|e| format!("spawn {name} ({command:?}): {e}"))?;
        match spawned.listening(services, false, START_DEADLINE) {
            Ok(addrs) => Ok(Proc { spawned, addrs }),
            Err(why) => {
                let stderr = spawned.stderr();
                let mut proc = Proc { spawned, addrs: HashMap::new() };
                proc.kill();
                Err(format!(
                    "{name} did not print `listening` for {services:?}: {why}\nstderr:\n{}",
                    tail(&stderr, 2000)
                ))
            }
        }
    }

    /// The process id.
    pub fn pid(&self) -> i32 {
        self.spawned.pid
    }

    /// The address `service` announced.
    pub fn addr(&self, service: &str) -> SocketAddr {
        self.addrs[service]
    }

    /// Everything it wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.spawned.stderr()
    }

    /// Resident memory now, KiB.
    pub fn rss_kib(&self) -> Option<u64> {
        rss_kib(self.pid())
    }

    /// True while the process runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.spawned.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// SIGTERM, then waits (SIGKILL after `grace`); returns all of stderr.
    pub fn stop(mut self, grace: Duration) -> String {
        if self.spawned.child.is_some() {
            let _ = self.spawned.signal(libc::SIGTERM);
            let _ = self.spawned.wait_timeout(grace);
        }
        self.spawned.join_stderr();
        self.stderr()
    }

    /// SIGKILL and reap, unless already done.
    fn kill(&mut self) {
        if let Some(mut child) = self.spawned.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Proc {
    /// Kills and reaps the child unless `stop` already did.
    fn drop(&mut self) {
        self.kill();
    }
}

/// `listening <service> <address>` into its parts.
pub fn parse_listening(line: &str) -> Option<(String, SocketAddr)> {
    process::parse_listening(line)
}

/// The last `n` characters of `text`, on a char boundary.
pub fn tail(text: &str, n: usize) -> &str {
    let mut start = text.len().saturating_sub(n);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// VmRSS of `pid`, KiB, from /proc/PID/status.
pub fn rss_kib(pid: i32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The counts of one `stats:` line, by name (`waits`, `recvs`, `bytes-in`, ...).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats(pub HashMap<String, u64>);

impl Stats {
    /// The count called `name`, 0 if absent.
    pub fn get(&self, name: &str) -> u64 {
        self.0.get(name).copied().unwrap_or(0)
    }
}

/// Parses what follows `stats:` (`waits W ready R recvs X ...`).
pub fn parse_stats(line: &str) -> Option<Stats> {
    let rest = &line[line.find("stats:")? + "stats:".len()..];
    let words: Vec<&str> = rest.split_whitespace().collect();
    let mut map = HashMap::new();
    for pair in words.chunks(2) {
        if let [name, value] = pair
            && let Ok(value) = value.parse()
        {
            map.insert(name.to_string(), value);
        }
    }
    map.contains_key("waits").then_some(Stats(map))
}

/// The last parseable `stats:` line of `stderr`.
pub fn last_stats(stderr: &str) -> Option<Stats> {
    stderr.lines().rev().find_map(parse_stats)
}

/// The command that starts a pollmux multiplexing server with only the services named.
pub fn pollmux_serve(backend: &str, services: &[&str], extra: &[&str]) -> Command {
    let mut command = Command::new(pollmux_bin());
    // The load comes from one address, far past the default 1,000 UDP replies a second.
    command.env("RUST_LOG", "info").args(["serve", "--backend", backend, "--udp-rate", "0"]);
    for service in ["tcp-echo", "tcp-upper", "tcp-frame", "tcp-array", "udp-upper", "udp-ping"] {
        let port = if services.contains(&service) { "0" } else { "off" };
        command.args([format!("--{service}"), port.to_string()]);
    }
    command.args(extra);
    command
}

/// The command that starts a baseline server (`--model sequential|threads|pool`) with
/// only `service` (tcp-echo or tcp-upper) on a free port. The baselines serve no UDP,
/// so they need no `--udp-rate`.
pub fn pollmux_model(model: &str, service: &str, extra: &[&str]) -> Command {
    let mut command = Command::new(pollmux_bin());
    command.env("RUST_LOG", "info").args(["serve", "--model", model]);
    for name in ["tcp-echo", "tcp-upper"] {
        let port = if name == service { "0" } else { "off" };
        command.args([format!("--{name}"), port.to_string()]);
    }
    command.args(extra);
    command
}

/// The interpreter the Python reference servers run on.
pub const PYTHON: &str = "python3";

/// `python3 --version` (`Python 3.11.7`), or why there is none.
pub fn python_version() -> Result<String, String> {
    let mut command = Command::new(PYTHON);
    command.arg("--version").stdin(Stdio::null());
    match command.output() {
        // Python 2 printed its version on stderr.
        Ok(out) if out.status.success() => {
            Ok(String::from_utf8_lossy(&[out.stdout, out.stderr].concat()).trim().to_string())
        }
        Ok(out) => Err(format!("`{PYTHON} --version` failed ({})", out.status)),
        Err(e) => Err(format!("{PYTHON} could not run ({e})")),
    }
}

/// The command that starts `examples/servers/SCRIPT.py` (a Python reference
/// server) with only `service` (tcp-echo or tcp-upper) on a free port, and
/// pollmux's listen backlog, so that a thousand connections at once are queued
/// alike.
pub fn python_server(script: &str, service: &str, extra: &[&str]) -> Command {
    let mut command = Command::new(PYTHON);
    command
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("examples/servers/{script}.py")));
    for name in ["tcp-echo", "tcp-upper"] {
        let port = if name == service { "0" } else { "off" };
        command.args([format!("--{name}"), port.to_string()]);
    }
    let backlog = pollmux::sys::net::DEFAULT_BACKLOG.to_string();
    command.args(["--backlog", &backlog]).args(extra);
    command
}

/// The command that runs this harness as one of its peers.
pub fn peer(flag: &str, args: &[&str]) -> Command {
    let mut command = Command::new(self_bin());
    command.arg(flag).args(args);
    command
}

/// Runs `command` to its end with output captured; killed after `deadline`.
pub fn run_captured(mut command: Command, deadline: Duration) -> Result<Output, String> {
    let shown = format!("{command:?}");
    match process::run_to_end(&mut command, deadline) {
        Ok((_, true)) => Err(format!("{shown} still ran after {deadline:?}; killed")),
        Ok((out, false)) => Ok(out),
        Err(e) => Err(format!("run {shown}: {e}")),
    }
}

/// One `pollmux load` run, from its `RESULT` line. Latencies in microseconds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Load {
    /// Connections of the run (`conns=`).
    pub conns: u64,
    /// Measured messages, all connections together (`messages=`).
    pub msgs: u64,
    /// Measured messages per second, all connections together.
    pub msgs_per_sec: f64,
    /// Median round trip.
    pub p50: f64,
    /// 90th-percentile round trip; NaN when the line has none.
    pub p90: f64,
    /// 99th-percentile round trip.
    pub p99: f64,
    /// 99.9th-percentile round trip.
    pub p999: f64,
    /// Slowest round trip; NaN when the line has none.
    pub max: f64,
    /// Errors the client counted; `load` fails a run with any.
    pub errors: u64,
    /// Open loop: the rate asked for (`offered_per_sec=`); NaN otherwise.
    pub offered: f64,
    /// Measured messages slower than 1 ms (`over_1ms=`); 0 when the line has none.
    pub over_1ms: u64,
    /// Open loop: the client's own lateness, p99, µs (`lag_p99_us=`); NaN otherwise.
    pub lag_p99: f64,
}

/// Parses `RESULT conns=.. msgs=.. messages=.. msgs_per_sec=.. p50_us=.. ... errors=..`
/// (`msgs` is per connection, `messages` all of them).
pub fn parse_result(line: &str) -> Option<Load> {
    let rest = line.trim().strip_prefix("RESULT")?;
    let fields: HashMap<&str, f64> = rest
        .split_whitespace()
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k, v.parse().ok()?))
        })
        .collect();
    let get = |k: &str| fields.get(k).copied();
    Some(Load {
        conns: get("conns")? as u64,
        msgs: get("messages").or_else(|| Some(get("msgs")? * get("conns")?))? as u64,
        msgs_per_sec: get("msgs_per_sec")?,
        p50: get("p50_us")?,
        p90: get("p90_us").unwrap_or(f64::NAN),
        p99: get("p99_us")?,
        p999: get("p999_us")?,
        max: get("max_us").unwrap_or(f64::NAN),
        errors: get("errors").unwrap_or(0.0) as u64,
        offered: get("offered_per_sec").unwrap_or(f64::NAN),
        over_1ms: get("over_1ms").unwrap_or(0.0) as u64,
        lag_p99: get("lag_p99_us").unwrap_or(f64::NAN),
    })
}

/// Client threads of every `pollmux load`: one core for the client, one for the
/// server, on the 2-core machine this is written for.
pub const LOAD_THREADS: u64 = 1;

/// The CPU single-connection workloads pin their server and client to: the
/// last one this process may use, or None on a single-CPU machine.
///
/// One connection is a serial ping-pong, so running both ends on one CPU costs
/// nothing but cross-CPU wake-ups. It also keeps either CPU from going idle
/// between a request and its reply: on a VM an idle vCPU halts, and waking it
/// takes tens of microseconds (about 35 µs each way on the machine this was
/// written on), which would swamp the few microseconds the servers differ by.
pub fn single_cpu() -> Option<usize> {
    let set = sched_getaffinity(Pid::from_raw(0)).ok()?;
    let cpus: Vec<usize> =
        (0..CpuSet::count()).filter(|&cpu| set.is_set(cpu).unwrap_or(false)).collect();
    if cpus.len() > 1 { cpus.last().copied() } else { None }
}

/// Makes `command` run on `cpu` only (its threads inherit it).
#[allow(unsafe_code)]
pub fn pin(command: &mut Command, cpu: usize) {
    use std::os::unix::process::CommandExt;
    let mut set = CpuSet::new();
    if set.set(cpu).is_err() {
        return; // past CPU_SETSIZE: leave it unpinned
    }
    // SAFETY: between fork and exec the closure only makes one syscall,
    // sched_setaffinity, which is async-signal-safe, on a set built before the fork.
    unsafe {
        command.pre_exec(move || {
            sched_setaffinity(Pid::from_raw(0), &set).map_err(std::io::Error::from)
        });
    }
}

/// Runs `pollmux load ADDR --conns C --msgs M --size 64 --expect echo --warmup W --threads 1`;
/// `msgs` and `warmup` are per connection.
/// `cpu`: the CPU to run the client on, if any.
pub fn load(
    addr: SocketAddr,
    conns: u64,
    msgs: u64,
    warmup: u64,
    cpu: Option<usize>,
) -> Result<Load, String> {
    let args = ["--msgs".to_string(), msgs.to_string()];
    run_load(addr, conns, warmup, &args, cpu)
}

/// Open loop: `pollmux load ADDR --rate R --duration S` (64-byte echo, one client thread),
/// `warmup` messages per connection first, at the same rate.
pub fn load_open(
    addr: SocketAddr,
    conns: u64,
    rate: f64,
    secs: f64,
    warmup: u64,
) -> Result<Load, String> {
    let args =
        ["--rate".to_string(), format!("{rate:.0}"), "--duration".to_string(), secs.to_string()];
    run_load(addr, conns, warmup, &args, None)
}

/// Churn: `pollmux load ADDR --churn --conns C --msgs M`: `conns` clients at once,
/// each opening `msgs` connections one after the other (after `warmup` more).
pub fn load_churn(addr: SocketAddr, conns: u64, msgs: u64, warmup: u64) -> Result<Load, String> {
    let args = ["--churn".to_string(), "--msgs".to_string(), msgs.to_string()];
    run_load(addr, conns, warmup, &args, None)
}

/// Runs `pollmux load ADDR --conns C --size 64 --expect echo --warmup W --threads 1` and
/// `pace` (its `--msgs`, `--rate`, `--churn` flags); a run with any error fails.
fn run_load(
    addr: SocketAddr,
    conns: u64,
    warmup: u64,
    pace: &[String],
    cpu: Option<usize>,
) -> Result<Load, String> {
    let mut command = Command::new(pollmux_bin());
    if let Some(cpu) = cpu {
        pin(&mut command, cpu);
    }
    command.args([
        "load",
        &addr.to_string(),
        "--conns",
        &conns.to_string(),
        "--size",
        "64",
        "--expect",
        "echo",
        "--warmup",
        &warmup.to_string(),
        "--threads",
        &LOAD_THREADS.to_string(),
    ]);
    command.args(pace);
    let out = run_captured(command, CLIENT_DEADLINE)?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let result = stdout.lines().rev().find_map(parse_result);
    match result {
        Some(load) if out.status.success() && load.errors == 0 => Ok(load),
        _ => Err(format!(
            "pollmux load {addr} --conns {conns} {}: {}\nstdout: {}\nstderr: {}",
            pace.join(" "),
            out.status,
            tail(&stdout, 1000),
            tail(&String::from_utf8_lossy(&out.stderr), 1000)
        )),
    }
}

/// CPU time `pid` has used so far (user + system, every thread), seconds, from
/// /proc/PID/stat. Counted in clock ticks of 1/100 s (USER_HZ, 100 on Linux).
pub fn cpu_secs(pid: i32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_cpu_ticks(&stat).map(|ticks| ticks as f64 / 100.0)
}

/// utime + stime (fields 14 and 15) of a /proc/PID/stat line; the command
/// name (field 2) may hold spaces and parentheses, so fields count from the last `)`.
pub fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14, stime 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// One `pollmux ping` run: each reply's round trip (µs) and the loss.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ping {
    /// Pings sent, from the summary line.
    pub sent: u64,
    /// Replies received, from the summary line.
    pub received: u64,
    /// Each reply's round trip, µs, in the order printed.
    pub rtts_us: Vec<f64>,
}

/// Parses ping(8)-like output: per-reply lines carrying `time=X ms` (or `us`/`µs`),
/// and a `N sent, M received` summary.
pub fn parse_ping(stdout: &str) -> Ping {
    let mut ping = Ping::default();
    for line in stdout.lines() {
        if let Some(at) = line.find("time=") {
            let rest = &line[at + 5..];
            let number: String =
                rest.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
            let unit = rest[number.len()..].trim_start();
            if let Ok(value) = number.parse::<f64>() {
                let us = if unit.starts_with("ms") {
                    value * 1000.0
                } else if unit.starts_with("ns") {
                    value / 1000.0
                } else if unit.starts_with('s') {
                    value * 1e6
                } else {
                    value // us, µs
                };
                ping.rtts_us.push(us);
            }
        }
        // `N packets transmitted, M received` (ping(8)) or `N sent, M received`.
        let words: Vec<&str> =
            line.split(|c: char| c == ',' || c.is_whitespace()).filter(|w| !w.is_empty()).collect();
        for (i, word) in words.iter().enumerate() {
            let Ok(n) = word.parse::<u64>() else { continue };
            let next = words.get(i + 1).copied().unwrap_or("");
            let after = words.get(i + 2).copied().unwrap_or("");
            if next.starts_with("sent")
                || next.starts_with("transmitted")
                || (next == "packets" && after.starts_with("transmitted"))
            {
                ping.sent = n;
            } else if next.starts_with("received") {
                ping.received = n;
            }
        }
    }
    ping
}

/// Runs `pollmux ping ADDR -c COUNT -i 0 -s SIZE`.
pub fn ping(addr: SocketAddr, count: u64, size: u64, cpu: Option<usize>) -> Result<Ping, String> {
    let mut command = Command::new(pollmux_bin());
    if let Some(cpu) = cpu {
        pin(&mut command, cpu);
    }
    command.args([
        "ping",
        &addr.to_string(),
        "-c",
        &count.to_string(),
        "-i",
        "0",
        "-s",
        &size.to_string(),
    ]);
    let out = run_captured(command, CLIENT_DEADLINE)?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let ping = parse_ping(&stdout);
    if ping.rtts_us.is_empty() {
        return Err(format!(
            "pollmux ping {addr}: {} and no reply times\nstdout: {}\nstderr: {}",
            out.status,
            tail(&stdout, 1000),
            tail(&String::from_utf8_lossy(&out.stderr), 1000)
        ));
    }
    Ok(ping)
}

/// Per-syscall call counts from `strace -c`, and the total.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Strace {
    /// Calls of every syscall together (the `total` row).
    pub total: u64,
    /// (syscall, calls) for each row of the table, in strace's order.
    pub calls: Vec<(String, u64)>,
}

/// Parses the table `strace -c` writes: `% time seconds usecs/call calls [errors] syscall`.
pub fn parse_strace(text: &str) -> Option<Strace> {
    let mut strace = Strace::default();
    let mut saw_total = false;
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.len() < 5 || words[0].parse::<f64>().is_err() {
            continue;
        }
        let name = words[words.len() - 1].to_string();
        let Ok(calls) = words[3].parse::<u64>() else { continue };
        if name == "total" {
            strace.total = calls;
            saw_total = true;
        } else {
            strace.calls.push((name, calls));
        }
    }
    saw_total.then_some(strace)
}

/// `strace -c -f` attached to a running process; `finish` detaches and reads the counts.
pub struct StraceRun {
    /// The strace process, interrupted by `finish`.
    child: Child,
    /// The file strace writes its summary to (`-o`); `finish` reads and removes it.
    out: PathBuf,
}

/// Whether strace can trace here: `strace -c true` runs.
pub fn strace_works() -> Result<(), String> {
    let mut command = Command::new("strace");
    command.args(["-c", "-o", "/dev/null", "true"]);
    match run_captured(command, Duration::from_secs(20)) {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!(
            "strace cannot trace here: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Err(format!("strace is not available ({e}); `apt-get install strace`")),
    }
}

impl StraceRun {
    /// Attaches to every thread of `pid`, and returns once strace said it attached.
    pub fn attach(pid: i32, out: &Path) -> Result<StraceRun, String> {
        let mut child = Command::new("strace")
            .args(["-c", "-f", "-o"])
            .arg(out)
            .args(["-p", &pid.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("spawn strace: {e}"))?;
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    // keep draining so strace never blocks on a full pipe
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(line) if line.contains("attached") => {
                // Let strace attach the remaining threads (`-f` on a multi-threaded process).
                thread::sleep(Duration::from_millis(200));
                Ok(StraceRun { child, out: out.to_path_buf() })
            }
            other => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!("strace -p {pid} did not attach: {other:?}"))
            }
        }
    }

    /// SIGINT: strace detaches and writes its summary; returns the counts.
    pub fn finish(mut self) -> Result<Strace, String> {
        let _ = process::send_signal(self.child.id() as i32, libc::SIGINT);
        let _ = self.child.wait();
        let text = std::fs::read_to_string(&self.out)
            .map_err(|e| format!("read {}: {e}", self.out.display()))?;
        let _ = std::fs::remove_file(&self.out);
        parse_strace(&text).ok_or_else(|| format!("no `total` line in strace output:\n{text}"))
    }
}
