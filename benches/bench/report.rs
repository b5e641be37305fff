//! The tables (terminal and Markdown), the targets and whether they were met,
//! the machine description, the plots and BENCHMARKS.md.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use plotters::coord::combinators::IntoLogRange;

use crate::plot::{self, Panel, Series};
use crate::stat::median;
use crate::workloads::{
    ArrayCell, BACKENDS, CHURN_CONNS, Cell, ChurnCell, Curve, CurvePoint, ECHO_SERVERS, EchoCell,
    EchoResults, FanInCell, IDLE_SERVERS, IdleResults, POOL_THREADS, PYTHON_SERVERS, PingCell,
    Plan, SATURATED, SLOW_CLIENTS, Server, SlowResults, SyscallCell, THREADS,
};

/// Everything one run measured.
#[derive(Default)]
pub struct Results {
    /// Workload 1, TCP echo, if it ran.
    pub echo: Option<EchoResults>,
    /// Syscalls per echoed message, if counted.
    pub syscalls: Option<Syscalls>,
    /// Workload 2, UDP ping, per server, if it ran.
    pub udp: Option<HashMap<Server, Cell<PingCell>>>,
    /// Workload 3, idle scaling, if it ran.
    pub idle: Option<IdleResults>,
    /// Workload 4, the array, per server, if it ran.
    pub array: Option<HashMap<Server, Cell<ArrayCell>>>,
    /// Open-loop latency against offered load, one curve set per connection count.
    pub curves: Option<Vec<Curve>>,
    /// Connection churn, per server.
    pub churn: Option<HashMap<Server, Cell<ChurnCell>>>,
    /// UDP fan-in, per (server, sender sockets).
    pub fan_in: Option<HashMap<(Server, u64), Cell<FanInCell>>>,
    /// Slow handlers, per server.
    pub slow: Option<SlowResults>,
}

/// Syscalls per echoed message at 100 connections, by server and source.
#[derive(Default)]
pub struct Syscalls {
    /// Connections of every counted run.
    pub conns: u64,
    /// Each backend's counts from its own `--stats`.
    pub stats: Vec<(Server, Cell<SyscallCell>)>,
    /// Counts from `strace -c -f`: each backend and the tokio peer.
    pub strace: Vec<(Server, Cell<SyscallCell>)>,
    /// Why strace could not run, if it could not.
    pub strace_unavailable: Option<String>,
}

/// A table with a title and notes, rendered for the terminal or Markdown.
pub struct Table {
    /// Heading above the table.
    pub title: String,
    /// Column headings.
    pub headers: Vec<String>,
    /// Formatted cells, row by row, one per header.
    pub rows: Vec<Vec<String>>,
    /// Paragraphs printed below the table.
    pub notes: Vec<String>,
    /// Leading columns of text (left-aligned); the rest are figures (right-aligned).
    pub left: usize,
}

impl Table {
    /// An empty table whose first column alone is text.
    fn new(title: impl Into<String>, headers: &[&str]) -> Table {
        Table {
            title: title.into(),
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
            notes: Vec::new(),
            left: 1,
        }
    }

    /// Aligned columns for the terminal.
    pub fn text(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let mut out = String::new();
            for (i, cell) in cells.iter().enumerate() {
                let pad = widths[i] - cell.chars().count();
                if i > 0 {
                    out.push_str("  ");
                }
                if i < self.left {
                    out.push_str(cell);
                    out.push_str(&" ".repeat(pad));
                } else {
                    out.push_str(&" ".repeat(pad));
                    out.push_str(cell);
                }
            }
            out.trim_end().to_string()
        };
        let mut out = format!("== {}\n{}\n", self.title, line(&self.headers));
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        out.push_str(&line(&rule));
        out.push('\n');
        for row in &self.rows {
            out.push_str(&line(row));
            out.push('\n');
        }
        for note in &self.notes {
            let _ = writeln!(out, "   {}", note.replace('`', ""));
        }
        out
    }

    /// A GitHub-flavoured Markdown table, title as a heading, notes below.
    pub fn markdown(&self, level: &str) -> String {
        let mut out = format!("{level} {}\n\n", self.title);
        let _ = writeln!(out, "| {} |", self.headers.join(" | "));
        let align: Vec<&str> =
            (0..self.headers.len()).map(|i| if i < self.left { "---" } else { "---:" }).collect();
        let _ = writeln!(out, "| {} |", align.join(" | "));
        for row in &self.rows {
            let cells: Vec<String> = row.iter().map(|c| c.replace('|', "\\|")).collect();
            let _ = writeln!(out, "| {} |", cells.join(" | "));
        }
        if !self.notes.is_empty() {
            out.push('\n');
            for note in &self.notes {
                let _ = writeln!(out, "{note}\n");
            }
        }
        out
    }
}

/// A latency in microseconds.
pub fn us(x: f64) -> String {
    if !x.is_finite() {
        "-".into()
    } else if x < 100.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.0}")
    }
}

/// A rate, with k/M.
pub fn rate(x: f64) -> String {
    if !x.is_finite() {
        "-".into()
    } else if x >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1}k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

/// `x / base` as `1.23x`.
fn ratio(x: f64, base: f64) -> String {
    if x.is_finite() && base.is_finite() && base > 0.0 {
        format!("{:.2}x", x / base)
    } else {
        "-".into()
    }
}

/// A value with its ratio to the reference, `12.3 (1.05x)`.
fn with_ratio(value: String, x: f64, base: Option<f64>) -> String {
    match base {
        Some(b) if b.is_finite() && b > 0.0 && x.is_finite() => {
            format!("{value} ({})", ratio(x, b))
        }
        _ => value,
    }
}

/// One target: what, for which server, the figure, the bar, and the verdict.
pub struct Target {
    /// What the target is about (its name in the table).
    pub what: String,
    /// The server it was measured on.
    pub server: String,
    /// The figure measured, formatted.
    pub measured: String,
    /// The bar to meet, or `report` when the figure is only reported.
    pub bar: String,
    /// None: reported only, or could not be measured.
    pub met: Option<bool>,
}

impl Target {
    /// The result column: `met`, `MISSED` or `-`.
    fn verdict(&self) -> &'static str {
        match self.met {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "-",
        }
    }
}

/// Where this ran.
pub struct Machine {
    /// When the run began, `YYYY-MM-DD HH:MM UTC`.
    pub date: String,
    /// CPUs this process may use; 0 if unknown.
    pub cores: usize,
    /// CPU model name from /proc/cpuinfo.
    pub cpu: String,
    /// `Linux <release>` from /proc/sys/kernel/osrelease.
    pub kernel: String,
    /// `rustc --version` of `$RUSTC` (or rustc).
    pub rustc: String,
    /// `python3 --version`, for the Python servers, or why there is none.
    pub python: String,
    /// Total memory from /proc/meminfo, in GiB.
    pub memory: String,
    /// The 1, 5 and 15 minute load averages as the run began.
    pub load_before: String,
    /// Percent of CPU time in use over the second before the run.
    pub busy_before: Option<f64>,
    /// CPU time (seconds, all cores) that processes other than this harness and its
    /// children used while it ran, and all the CPU time there was; set after the run.
    pub others_during: Option<(f64, f64)>,
}

impl Machine {
    /// A placeholder for reports not written from a real run (the self-check).
    pub fn unknown() -> Machine {
        Machine {
            date: utc_now(),
            cores: 0,
            cpu: "unknown".into(),
            kernel: "unknown".into(),
            rustc: "unknown".into(),
            python: "unknown".into(),
            memory: "unknown".into(),
            load_before: load_average(),
            busy_before: None,
            others_during: None,
        }
    }

    /// Describes this machine; takes a second, to measure how busy its CPUs are.
    pub fn describe() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| format!("Linux {}", s.trim()))
            .unwrap_or_else(|_| "unknown".into());
        let rustc = std::process::Command::new(std::env::var("RUSTC").unwrap_or("rustc".into()))
            .arg("--version")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        let memory = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                let kib: f64 = m.lines().next()?.split_whitespace().nth(1)?.parse().ok()?;
                Some(format!("{:.1} GiB", kib / 1024.0 / 1024.0))
            })
            .unwrap_or_else(|| "unknown".into());
        let load_before = load_average();
        let busy_before = cpu_busy(std::time::Duration::from_secs(1));
        Machine {
            date: utc_now(),
            cores: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            cpu,
            kernel,
            rustc,
            python: crate::procs::python_version().unwrap_or_else(|why| why),
            memory,
            load_before,
            busy_before,
            others_during: None,
        }
    }
}

/// The 1, 5 and 15 minute load averages.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// (busy, total) CPU time so far, in clock ticks, from the first line of /proc/stat.
fn cpu_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let ticks: Vec<u64> =
        stat.lines().next()?.split_whitespace().skip(1).filter_map(|t| t.parse().ok()).collect();
    let total: u64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3)? + ticks.get(4).unwrap_or(&0);
    Some((total - idle, total))
}

/// How busy the CPUs were over the next `window`, percent of all of them.
pub fn cpu_busy(window: std::time::Duration) -> Option<f64> {
    let (busy0, total0) = cpu_ticks()?;
    std::thread::sleep(window);
    let (busy1, total1) = cpu_ticks()?;
    let total = total1.saturating_sub(total0);
    (total > 0).then(|| busy1.saturating_sub(busy0) as f64 * 100.0 / total as f64)
}

/// A warning when something else was using the CPUs as the run began.
pub fn busy_warning(busy_percent: Option<f64>) -> Option<String> {
    let busy = busy_percent?;
    (busy > 10.0).then(|| {
        format!(
            "The machine was not idle when the run began ({busy:.0}% of its CPU time was in use \
             just before): other processes shared the CPUs, so the figures are noisier than on an \
             idle machine."
        )
    })
}

/// Now, as `YYYY-MM-DD HH:MM UTC`.
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02} UTC", rest / 3600, rest % 3600 / 60)
}

/// What a failed or skipped cell shows.
fn missing<T>(cell: &Cell<T>) -> String {
    match cell {
        Ok(_) => String::new(),
        Err(why) if why.starts_with("n/a") => "n/a".into(),
        Err(_) => "failed".into(),
    }
}

/// The tables and targets of a run.
pub struct Report {
    /// One table per workload section, in run order.
    pub tables: Vec<Table>,
    /// Every target checked against this run's figures.
    pub targets: Vec<Target>,
}

impl Report {
    /// The tables and targets of whichever workloads `results` holds.
    pub fn build(plan: &Plan, results: &Results) -> Report {
        let mut tables = Vec::new();
        let mut targets = Vec::new();
        if let Some(echo) = &results.echo {
            echo_tables(plan, echo, &mut tables, &mut targets);
        }
        if let Some(sys) = &results.syscalls {
            tables.push(syscall_table(sys, &mut targets));
        }
        if let Some(curves) = &results.curves {
            curve_tables(curves, &mut tables, &mut targets);
        }
        if let Some(churn) = &results.churn {
            tables.push(churn_table(plan, churn, &mut targets));
        }
        if let Some(udp) = &results.udp {
            tables.push(udp_table(udp));
        }
        if let Some(fan_in) = &results.fan_in {
            tables.push(fan_in_table(plan, fan_in, &mut targets));
        }
        if let Some(idle) = &results.idle {
            tables.push(idle_table(plan, idle, &mut targets));
        }
        if let Some(array) = &results.array {
            tables.push(array_table(array, &mut targets));
        }
        if let Some(slow) = &results.slow {
            tables.push(slow_table(plan, slow, &mut targets));
        }
        Report { tables, targets }
    }

    /// The targets as a table, with a note naming any that were missed.
    pub fn target_table(&self) -> Table {
        let mut t = Table::new("Targets", &["target", "server", "measured", "bar", "result"]);
        t.left = 5;
        for target in &self.targets {
            t.rows.push(vec![
                target.what.clone(),
                target.server.clone(),
                target.measured.clone(),
                target.bar.clone(),
                target.verdict().into(),
            ]);
        }
        let missed: Vec<String> = self
            .targets
            .iter()
            .filter(|t| t.met == Some(false))
            .map(|t| format!("{} ({}: {})", t.what, t.server, t.measured))
            .collect();
        t.notes.push(if missed.is_empty() {
            "Every measured target was met in this run.".into()
        } else {
            format!("**Missed in this run:** {}.", missed.join("; "))
        });
        t
    }

    /// Everything for the terminal.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for table in &self.tables {
            out.push_str(&table.text());
            out.push('\n');
        }
        out.push_str(&self.target_table().text());
        out
    }
}

/// One echo table per connection count, and the echo targets.
fn echo_tables(
    plan: &Plan,
    echo: &EchoResults,
    tables: &mut Vec<Table>,
    targets: &mut Vec<Target>,
) {
    for &conns in &plan.conns {
        let base = echo.cells.get(&(THREADS, conns)).and_then(|c| c.as_ref().ok()).cloned();
        let mut t = Table::new(
            format!(
                "TCP echo, 64-byte messages, {conns} connection{}",
                if conns == 1 { "" } else { "s" }
            ),
            &["server", "p50 µs", "p99 µs", "p99.9 µs", "msgs/s", "msgs per conn"],
        );
        for server in ECHO_SERVERS.into_iter().chain(PYTHON_SERVERS) {
            let Some(cell) = echo.cells.get(&(server, conns)) else { continue };
            let row = match cell {
                Ok(c) => vec![
                    server.name().to_string(),
                    with_ratio(us(c.p50), c.p50, base.as_ref().map(|b| b.p50)),
                    with_ratio(us(c.p99), c.p99, base.as_ref().map(|b| b.p99)),
                    with_ratio(us(c.p999), c.p999, base.as_ref().map(|b| b.p999)),
                    with_ratio(
                        rate(c.msgs_per_sec),
                        c.msgs_per_sec,
                        base.as_ref().map(|b| b.msgs_per_sec),
                    ),
                    c.msgs.to_string(),
                ],
                Err(_) => {
                    let m = missing(cell);
                    vec![server.name().into(), m.clone(), m.clone(), m.clone(), m, "-".into()]
                }
            };
            t.rows.push(row);
        }
        t.notes.push(format!(
            "Medians of {} interleaved runs; (x) is the ratio to `threads` (thread per connection) in the same run.",
            plan.rounds
        ));
        if conns == 1 {
            if let Some(cpu) = echo.pinned_cpu {
                t.notes.push(format!(
                    "One connection: every server and its client run on CPU {cpu} only (a ping-pong is \
                     serial; this keeps an idle CPU's wake-up out of each round trip)."
                ));
            }
            let unpinned: Vec<String> = echo
                .unpinned
                .iter()
                .map(|(s, run)| match run {
                    Ok(l) => format!("{} p50 {} µs, p99 {} µs", s.name(), us(l.p50), us(l.p99)),
                    Err(_) => format!("{} failed", s.name()),
                })
                .collect();
            if !unpinned.is_empty() {
                t.notes.push(format!(
                    "The same, unpinned (server and client free to use either CPU), one run each: {}.",
                    unpinned.join("; ")
                ));
            }
        }
        if conns > 4 && echo.cells.get(&(Server::Model("pool"), conns)).is_some_and(|c| c.is_ok()) {
            t.notes.push(
                "pool: each of its 4 threads serves one connection to its end; the others wait in the \
                 listen backlog during their (untimed) warm-up, so its round trips only cover connections \
                 being served. Compare its msgs/s."
                    .into(),
            );
        }
        for server in ECHO_SERVERS.into_iter().chain(PYTHON_SERVERS) {
            if server == Server::Model("pool") {
                continue; // its own note above
            }
            if let Some(Ok(c)) = echo.cells.get(&(server, conns))
                && let Some(mean) = uneven(c, conns)
            {
                t.notes.push(format!(
                    "{}: {conns} connections, each with one message outstanding, at {} msgs/s mean \
                     a round trip of {} µs on average (Little's law), yet its p50 is {} µs: it \
                     served the connections unevenly, some while others waited in their warm-up, \
                     which is not timed (each connection times its messages after its own \
                     warm-up). Its p50 and p99 cover the connections being served; compare its msgs/s.",
                    server.name(),
                    rate(c.msgs_per_sec),
                    us(mean),
                    us(c.p50)
                ));
            }
        }
        if PYTHON_SERVERS.iter().any(|&s| echo.cells.get(&(s, conns)).is_some_and(|c| c.is_ok())) {
            t.notes.push(
                "python: the reference servers of examples/servers/ under CPython, measured in the \
                 same rounds; they do not set TCP_NODELAY, which with one message outstanding per \
                 connection never holds a reply (all they sent before was acknowledged)."
                    .into(),
            );
        }
        for server in ECHO_SERVERS.into_iter().chain(PYTHON_SERVERS) {
            if let Some(Err(why)) = echo.cells.get(&(server, conns)) {
                t.notes.push(format!("{}: {why}", server.name()));
            }
        }
        tables.push(t);
    }
    if let Some(t) = language_table(plan, echo) {
        tables.push(t);
    }
    let get = |s: Server, c: u64| echo.cells.get(&(s, c)).and_then(|c| c.as_ref().ok());
    for server in BACKENDS {
        // One connection: p50 within 1.10x of threads.
        if let (Some(m), Some(b)) = (get(server, 1), get(THREADS, 1)) {
            let r = m.p50 / b.p50;
            targets.push(Target {
                what: "1 conn echo p50 vs threads".into(),
                server: server.name().into(),
                measured: format!("{:.2}x ({} vs {} µs)", r, us(m.p50), us(b.p50)),
                bar: "≤ 1.10x".into(),
                met: Some(r <= 1.10),
            });
        }
        if let (Some(m), Some(t)) = (get(server, 100), get(Server::Tokio, 100)) {
            let r = m.msgs_per_sec / t.msgs_per_sec;
            targets.push(Target {
                what: "100 conns msgs/s vs tokio".into(),
                server: server.name().into(),
                measured: format!("{r:.2}x ({} vs {})", rate(m.msgs_per_sec), rate(t.msgs_per_sec)),
                bar: "≥ 0.95x".into(),
                met: Some(r >= 0.95),
            });
        }
        if let (Some(m), Some(b)) = (get(server, 100), get(THREADS, 100)) {
            let r = m.msgs_per_sec / b.msgs_per_sec;
            targets.push(Target {
                what: "100 conns msgs/s vs threads".into(),
                server: server.name().into(),
                measured: format!("{r:.2}x ({} vs {})", rate(m.msgs_per_sec), rate(b.msgs_per_sec)),
                bar: "≥ 1.5x".into(),
                met: Some(r >= 1.5),
            });
        }
        if let (Some(m), Some(t)) = (get(server, 1000), get(Server::Tokio, 1000)) {
            let r = m.msgs_per_sec / t.msgs_per_sec;
            targets.push(Target {
                what: "1000 conns msgs/s vs tokio".into(),
                server: server.name().into(),
                measured: format!("{r:.2}x ({} vs {})", rate(m.msgs_per_sec), rate(t.msgs_per_sec)),
                bar: "≥ 1.0x".into(),
                met: Some(r >= 1.0),
            });
        }
    }
}

/// The mean round trip, µs, that `conns` connections with one message outstanding
/// each imply at the cell's msgs/s (Little's law), when its p50 is under a quarter
/// of it: the server served the connections unevenly, and the closed loop, which
/// times each connection after its own warm-up, timed mostly those being served.
fn uneven(cell: &EchoCell, conns: u64) -> Option<f64> {
    let mean = conns as f64 / cell.msgs_per_sec * 1e6;
    (conns > 1 && mean.is_finite() && cell.p50 < 0.25 * mean).then_some(mean)
}

/// The comparisons of the language-and-design table: (numerator, denominator,
/// what changes between them).
const LANGUAGE_ROWS: [(Server, Server, &str); 5] = [
    (Server::Python("poll_server"), Server::Mux("poll"), "the language: one poll() loop in each"),
    (Server::Python("threaded"), THREADS, "the language: a thread per connection in each"),
    (
        Server::Python("sequential"),
        Server::Model("sequential"),
        "the language: one client at a time in each",
    ),
    (
        Server::Python("poll_server"),
        Server::Python("threaded"),
        "the design, in Python: a poll() loop against a thread per connection",
    ),
    (
        Server::Mux("poll"),
        THREADS,
        "the design, in Rust: a poll() loop against a thread per connection",
    ),
];

/// How much the language costs, and how much the design: the echo figures of
/// the Python servers against pollmux's at the same connection counts, as ratios.
/// None when no Python server was measured.
fn language_table(plan: &Plan, echo: &EchoResults) -> Option<Table> {
    let counts: Vec<u64> = plan
        .python_conns
        .iter()
        .copied()
        .filter(|&c| PYTHON_SERVERS.iter().any(|&s| echo.cells.contains_key(&(s, c))))
        .collect();
    if counts.is_empty() {
        return None;
    }
    let get = |s: Server, c: u64| echo.cells.get(&(s, c)).and_then(|c| c.as_ref().ok());
    let mut headers = vec!["servers (a ÷ b)".to_string(), "what changes".to_string()];
    headers.extend(counts.iter().map(|c| format!("{c} conn{}", if *c == 1 { "" } else { "s" })));
    let refs: Vec<&str> = headers.iter().map(String::as_str).collect();
    let mut t = Table::new("The language and the design: TCP echo, a ÷ b", &refs);
    t.left = 2;
    for (a, b, what) in LANGUAGE_ROWS {
        let mut row = vec![format!("{} ÷ {}", a.name(), b.name()), what.to_string()];
        for &c in &counts {
            row.push(match (get(a, c), get(b, c)) {
                (Some(x), Some(y)) => format!(
                    "msgs/s {} ({} vs {}); p50 {}",
                    ratio(x.msgs_per_sec, y.msgs_per_sec),
                    rate(x.msgs_per_sec),
                    rate(y.msgs_per_sec),
                    if uneven(x, c).is_some() || uneven(y, c).is_some() {
                        "- (uneven)".to_string()
                    } else {
                        ratio(x.p50, y.p50)
                    }
                ),
                _ => {
                    let cell = |s: Server| echo.cells.get(&(s, c));
                    let limited = [a, b]
                        .into_iter()
                        .find_map(|s| s.max_conns().filter(|&m| c > m).map(|m| (s, m)));
                    match (limited, [a, b].into_iter().find_map(|s| cell(s)?.as_ref().err())) {
                        (Some((s, m)), _) => format!("n/a: {} serves {m} at a time", s.name()),
                        (None, Some(why)) if why.starts_with("n/a") => "n/a".into(),
                        (None, Some(_)) => "failed".into(),
                        (None, None) => "-".into(),
                    }
                }
            });
        }
        t.rows.push(row);
    }
    t.notes.push(
        "Each cell divides server a's closed-loop figures by server b's, from the echo tables above \
         (the same interleaved rounds): msgs/s above 1x means a answered more messages, p50 above 1x \
         that its median round trip was longer (`- (uneven)`: one of the two served its connections \
         unevenly, see the echo table's note, so its p50 does not time every connection's wait). \
         The first three rows keep the design and change the \
         language (CPython against Rust: the same loop or threads, the same system calls); the last \
         two keep the language and change the design. At 1 connection every server shares one CPU \
         with its client; at more, the client has about one core and the server the other \
         (CPython runs one thread's Python code at a time: the threaded server's threads overlap \
         only in system calls)."
            .into(),
    );
    let python_missing = counts.iter().find_map(|&c| {
        let why = echo.cells.get(&(PYTHON_SERVERS[2], c))?.as_ref().err()?;
        why.starts_with("n/a").then_some(why)
    });
    if let Some(why) = python_missing {
        t.notes
            .push(format!("The Python servers did not run: {}.", why.trim_start_matches("n/a: ")));
    }
    if let Some(summary) = language_summary(&counts, echo) {
        t.notes.push(summary);
    }
    Some(t)
}

/// The language table in a sentence or two, from the largest connection count at
/// which both comparisons were measured.
fn language_summary(counts: &[u64], echo: &EchoResults) -> Option<String> {
    let get = |s: Server, c: u64| echo.cells.get(&(s, c)).and_then(|c| c.as_ref().ok());
    let (py_poll, py_threads) = (Server::Python("poll_server"), Server::Python("threaded"));
    let poll = Server::Mux("poll");
    let &c = counts
        .iter()
        .rev()
        .find(|&&c| [py_poll, py_threads, poll, THREADS].iter().all(|&s| get(s, c).is_some()))?;
    let rate_of = |s: Server| get(s, c).map_or(f64::NAN, |x| x.msgs_per_sec);
    Some(format!(
        "In this run, at {c} connections: with the same poll() loop, Rust answers {:.2}x Python's \
         messages/s, with a thread per connection {:.2}x (the language); in Python, the poll() loop \
         answers {:.2}x the threads' messages/s, in Rust {:.2}x (the design).",
        rate_of(poll) / rate_of(py_poll),
        rate_of(THREADS) / rate_of(py_threads),
        rate_of(py_poll) / rate_of(py_threads),
        rate_of(poll) / rate_of(THREADS),
    ))
}

/// The syscalls-per-message table, and each backend's `--stats` target.
fn syscall_table(sys: &Syscalls, targets: &mut Vec<Target>) -> Table {
    let mut t = Table::new(
        format!("Syscalls per echoed message, {} connections", sys.conns),
        &[
            "server",
            "counted by",
            "messages",
            "syscalls",
            "per message",
            "events per wait",
            "largest counts",
        ],
    );
    t.left = 2;
    for (server, cell) in sys.stats.iter().chain(sys.strace.iter()) {
        let row = match cell {
            Ok(c) => {
                let top: Vec<String> =
                    c.calls.iter().take(4).map(|(n, k)| format!("{n} {k}")).collect();
                vec![
                    server.name().into(),
                    c.source.into(),
                    c.messages.to_string(),
                    c.total.to_string(),
                    format!("{:.2}", c.per_message()),
                    c.events_per_wait.map_or("-".into(), |e| format!("{e:.1}")),
                    top.join(", "),
                ]
            }
            Err(why) => vec![
                server.name().into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "failed".into(),
                "-".into(),
                why.clone(),
            ],
        };
        t.rows.push(row);
    }
    for (server, cell) in &sys.stats {
        if let Ok(c) = cell {
            let per = c.per_message();
            targets.push(Target {
                what: format!("syscalls per echoed message, {} conns (--stats)", sys.conns),
                server: server.name().into(),
                measured: format!("{per:.2}"),
                bar: "≤ 2.1".into(),
                met: Some(per <= 2.1),
            });
        }
    }
    t.notes.push(
        "`--stats` counts the server's wait calls and every recv and send call, those that returned \
         EAGAIN included (not accepts or epoll_ctl); messages = bytes-in / 64, \
         warm-up included. `strace -c -f` counts every syscall of every thread while attached, \
         accepts and closes of the 100 connections included; strace slows each call, which makes \
         wake-ups batch more events."
            .into(),
    );
    if let Some(why) = &sys.strace_unavailable {
        t.notes.push(format!("strace could not run: {why}"));
    }
    t
}

/// The UDP ping table (reported only: no targets).
fn udp_table(udp: &HashMap<Server, Cell<PingCell>>) -> Table {
    let mut t = Table::new(
        "UDP ping round trip (`pollmux ping -i 0 -s 64`)",
        &["server", "p50 µs", "p99 µs", "p5–p95 mean µs", "received / sent"],
    );
    let base = udp.get(&Server::BlockingUdp).and_then(|c| c.as_ref().ok()).cloned();
    for server in [BACKENDS[0], BACKENDS[1], BACKENDS[2], Server::BlockingUdp] {
        let Some(cell) = udp.get(&server) else { continue };
        t.rows.push(match cell {
            Ok(c) => vec![
                server.name().into(),
                with_ratio(us(c.p50), c.p50, base.as_ref().map(|b| b.p50)),
                with_ratio(us(c.p99), c.p99, base.as_ref().map(|b| b.p99)),
                with_ratio(us(c.mean), c.mean, base.as_ref().map(|b| b.mean)),
                format!("{} / {}", c.received, c.sent),
            ],
            Err(why) => {
                vec![server.name().into(), "failed".into(), "-".into(), "-".into(), why.clone()]
            }
        });
    }
    t.notes.push(
        "`pollmux ping` prints each round trip to the microsecond (`time=0.006 ms`), so the p5–p95 \
         mean, over thousands of pings, tells apart servers whose p50 rounds to the same microsecond."
            .into(),
    );
    t.notes.push(
        "Each server and `pollmux ping` run on one CPU, as the 1-connection echo does.".into(),
    );
    t.notes.push(
        "The baselines are TCP only, so (x) here is the ratio to a blocking recvfrom/sendto loop \
         (the UDP floor), run the same way in the same run."
            .into(),
    );
    t
}

/// The idle-scaling table, and each backend's growth and RSS-per-connection targets.
fn idle_table(plan: &Plan, idle: &IdleResults, targets: &mut Vec<Target>) -> Table {
    let mut headers: Vec<String> = vec!["server".into()];
    for n in &plan.idle {
        headers.push(format!("{n} idle: p50 / p99 µs"));
    }
    headers.push("p50 growth".into());
    headers.push("RSS per idle conn".into());
    let header_refs: Vec<&str> = headers.iter().map(String::as_str).collect();
    let mut t = Table::new("Idle scaling: one active connection's round trip", &header_refs);
    let first = plan.idle.first().copied().unwrap_or(0);
    for server in IDLE_SERVERS {
        let mut row = vec![server.name().to_string()];
        let mut reached: Option<(u64, f64)> = None;
        for &n in &plan.idle {
            let base = idle.cells.get(&(THREADS, n)).and_then(|c| c.as_ref().ok()).map(|b| b.p50);
            match idle.cells.get(&(server, n)) {
                Some(Ok(c)) => {
                    let base = if server == THREADS { None } else { base };
                    row.push(format!("{} / {}", with_ratio(us(c.p50), c.p50, base), us(c.p99)));
                    reached = Some((n, c.p50));
                }
                Some(cell) => row.push(missing(cell)),
                None => row.push("-".into()),
            }
        }
        let p50_at_first =
            idle.cells.get(&(server, first)).and_then(|c| c.as_ref().ok()).map(|c| c.p50);
        let growth = match (p50_at_first, reached) {
            (Some(a), Some((n, b))) if n > first => format!("{:.2}x at {n}", b / a),
            _ => "-".into(),
        };
        row.push(growth.clone());
        // RSS per idle connection at the largest count reached, median over rounds.
        let per_conn = idle.rss_per_conn.get(&server).and_then(|list| {
            let top = list.iter().map(|&(n, _)| n).max()?;
            Some((top, median(list.iter().filter(|&&(n, _)| n == top).map(|&(_, b)| b))))
        });
        row.push(per_conn.map_or("-".into(), |(n, b)| format!("{b:.0} B (at {n})")));
        t.rows.push(row);
        if BACKENDS.contains(&server) {
            targets.push(Target {
                what: format!("idle scaling: active p50, {first} -> most idle"),
                server: server.name().into(),
                measured: growth,
                bar: "report".into(),
                met: None,
            });
            if let Some((n, b)) = per_conn {
                targets.push(Target {
                    what: "server RSS per idle connection".into(),
                    server: server.name().into(),
                    measured: format!("{b:.0} B (at {n} idle)"),
                    bar: "< 2048 B".into(),
                    met: Some(b < 2048.0),
                });
            }
        }
    }
    t.notes.push(format!(
        "Each cell is the median over {} rounds of a 1-connection `pollmux load` (server and client on \
         one CPU, as for the 1-connection echo) while the harness holds the idle connections open (accepted: the server holds their descriptors); (x) is the ratio to \
         `threads` at the same count. RSS per idle connection = (VmRSS with the idle connections − VmRSS \
         with none) / count. select stops at 1,000: FD_SETSIZE is 1024. The pollmux servers run with \
         `--max-conns 20000` here: the default 10,000 would refuse the active connection beside 10,000 idle ones.",
        plan.rounds
    ));
    for server in IDLE_SERVERS {
        for &n in &plan.idle {
            if let Some(Err(why)) = idle.cells.get(&(server, n))
                && !why.starts_with("n/a")
            {
                t.notes.push(format!("{} at {n} idle: {why}", server.name()));
            }
        }
    }
    t
}

/// The largest RSS growth during the response that still counts as "not growing".
const ARRAY_GROWTH_LIMIT_MIB: f64 = 8.0;

/// The array table, and each backend's throughput and RSS targets.
fn array_table(array: &HashMap<Server, Cell<ArrayCell>>, targets: &mut Vec<Target>) -> Table {
    let mut t = Table::new(
        "The array: one request for every value (`0:50000000`, 400 MB)",
        &[
            "server",
            "GB/s",
            "seconds",
            "RSS before MiB",
            "RSS peak MiB",
            "RSS after MiB",
            "largest growth MiB",
        ],
    );
    let base = array.get(&Server::BlockingArray).and_then(|c| c.as_ref().ok()).cloned();
    for server in [BACKENDS[0], BACKENDS[1], BACKENDS[2], Server::BlockingArray] {
        let Some(cell) = array.get(&server) else { continue };
        t.rows.push(match cell {
            Ok(c) => vec![
                server.name().into(),
                with_ratio(
                    format!("{:.2}", c.gb_per_sec),
                    c.gb_per_sec,
                    base.as_ref().map(|b| b.gb_per_sec),
                ),
                format!("{:.3}", c.secs),
                format!("{:.0}", c.rss_before_mib),
                format!("{:.0}", c.rss_peak_mib),
                format!("{:.0}", c.rss_after_mib),
                format!("{:.1}", c.growth_mib),
            ],
            Err(why) => {
                let mut row = vec![server.name().into(), "failed".into()];
                row.extend(std::iter::repeat_n("-".to_string(), 4));
                row.push(why.clone());
                row
            }
        });
        if let (true, Ok(c)) = (BACKENDS.contains(&server), cell) {
            if let Some(b) = &base {
                let r = c.gb_per_sec / b.gb_per_sec;
                targets.push(Target {
                    what: "array GB/s vs blocking send".into(),
                    server: server.name().into(),
                    measured: format!("{r:.2}x ({:.2} vs {:.2} GB/s)", c.gb_per_sec, b.gb_per_sec),
                    bar: "≥ 0.9x".into(),
                    met: Some(r >= 0.9),
                });
            }
            targets.push(Target {
                what: "array: server RSS does not grow with the response".into(),
                server: server.name().into(),
                measured: format!("+{:.1} MiB peak", c.growth_mib),
                bar: format!("< {ARRAY_GROWTH_LIMIT_MIB:.0} MiB (response: 400 MB)"),
                met: Some(c.growth_mib < ARRAY_GROWTH_LIMIT_MIB),
            });
        }
    }
    if let Some(Ok(c)) = array.get(&Server::BlockingArray).or_else(|| array.get(&BACKENDS[2])) {
        t.notes.push(format!("The response is {} bytes: a 5-byte header and the values.", c.bytes));
    }
    t.notes.push(
        "A fresh server per run (the array is built at start, so \"before\" already holds its 381 MiB); \
         the harness reads the reply in 4 MiB reads, checks its length and spot-checks values, and samples \
         the server's VmRSS every 2 ms while it sends. (x) is the ratio to one blocking send(2) of the same buffer."
            .into(),
    );
    t
}

/// The label of an offered level: `50% (140k/s)`.
fn level_label(curve: &Curve, level: usize) -> String {
    let fraction = curve.levels[level];
    format!("{:.0}% ({}/s)", fraction * 100.0, rate(fraction * curve.reference))
}

/// Why a server cannot serve every connection of `conns` at once, if it cannot.
pub fn partial_server(server: Server, conns: u64) -> Option<String> {
    match server {
        Server::Model("sequential") if conns > 1 => Some("serves 1 connection at a time".into()),
        Server::Model("pool") if conns > POOL_THREADS => {
            Some(format!("serves {POOL_THREADS} connections at a time"))
        }
        _ => None,
    }
}

/// The highest level up to which `server`'s p99 stays under 1 ms and it keeps up:
/// every level from the lowest to it passed (a pass above a failure does not count).
fn highest_under_1ms(curve: &Curve, server: Server) -> Option<(usize, CurvePoint)> {
    (0..curve.levels.len())
        .map_while(|level| {
            let point = curve.points.get(&(server, level))?.as_ref().ok()?;
            (point.p99 < 1000.0 && !point.saturated()).then(|| (level, point.clone()))
        })
        .last()
}

/// Per connection count, the p99-against-load table; then the p99-under-1-ms
/// table over all counts; and the open-loop targets.
fn curve_tables(curves: &[Curve], tables: &mut Vec<Table>, targets: &mut Vec<Target>) {
    for curve in curves {
        let mut headers = vec!["server".to_string(), "closed-loop max".to_string()];
        headers.extend((0..curve.levels.len()).map(|l| level_label(curve, l)));
        let refs: Vec<&str> = headers.iter().map(String::as_str).collect();
        let mut t = Table::new(
            format!(
                "Open-loop latency against offered load, TCP echo, 64-byte messages, {} connections: p99 µs",
                curve.conns
            ),
            &refs,
        );
        for server in ECHO_SERVERS {
            let Some(max) = curve.max.get(&server) else { continue };
            let mut row = vec![server.name().to_string()];
            row.push(match max {
                Ok(m) => format!("{}/s", rate(*m)),
                Err(_) => missing(max),
            });
            for level in 0..curve.levels.len() {
                row.push(match curve.points.get(&(server, level)) {
                    Some(Ok(p)) if p.saturated() => {
                        format!("{} (got {})", us(p.p99), rate(p.achieved))
                    }
                    Some(Ok(p)) => us(p.p99),
                    Some(Err(why)) if why.starts_with("n/a") => "-".into(),
                    Some(cell) => missing(cell),
                    None => "-".into(),
                });
            }
            t.rows.push(row);
        }
        // The client's own lateness: how long after its due time it queued a message.
        let mut lag = vec!["(client lateness p99, worst server)".to_string(), "-".to_string()];
        for level in 0..curve.levels.len() {
            let worst = ECHO_SERVERS
                .iter()
                .filter_map(|&s| curve.points.get(&(s, level))?.as_ref().ok().map(|p| p.lag_p99))
                .filter(|x| x.is_finite())
                .fold(f64::NAN, f64::max);
            lag.push(us(worst));
        }
        t.rows.push(lag);
        let reference = curve.reference_server.map_or("-", Server::name);
        t.notes.push(format!(
            "Each column is an offered load, a fraction of {reference}'s closed-loop maximum at {} \
             connections ({}/s, from the echo table, or a probe), sent by `pollmux load --rate R \
             --duration {}` (open loop: every message due on a fixed schedule, spread evenly over the \
             connections, pipelined), 64-byte messages. Latency runs from when each message was due, \
             so it includes every moment it waited for the server, in the socket or in the listen \
             backlog. `(got X)`: the server answered only X/s, under {:.0}% of the offered load \
             (saturated); a server is not pushed further after two such levels (`-`). One run per \
             level, the median of several at the targets' levels; p50 is in the plot. The last row is the \
             client's own share: how late it queued a message after its due time (p99 of the run, the \
             worst over the servers); a figure not far above it says more about the machine than the server.",
            curve.conns,
            rate(curve.reference),
            "S",
            SATURATED * 100.0
        ));
        for server in ECHO_SERVERS {
            if let Some(why) = partial_server(server, curve.conns)
                && curve.max.contains_key(&server)
            {
                t.notes.push(format!(
                    "{}: {why}, so the others wait (in the listen backlog, their messages queued) \
                     until one closes at the end of its schedule; those waits are in its figures.",
                    server.name()
                ));
            }
        }
        for server in ECHO_SERVERS {
            for level in 0..curve.levels.len() {
                if let Some(Err(why)) = curve.points.get(&(server, level))
                    && !why.starts_with("n/a")
                {
                    t.notes.push(format!(
                        "{} at {}: {why}",
                        server.name(),
                        level_label(curve, level)
                    ));
                }
            }
        }
        tables.push(t);
        let tokio = |level: usize| {
            curve.points.get(&(Server::Tokio, level)).and_then(|p| p.as_ref().ok()).cloned()
        };
        for fraction in [0.5, 0.8] {
            let Some(level) = curve.levels.iter().position(|l| (l - fraction).abs() < 1e-9) else {
                continue;
            };
            for server in [BACKENDS[0], BACKENDS[2]] {
                let mine = curve.points.get(&(server, level)).and_then(|p| p.as_ref().ok());
                if let (Some(m), Some(b)) = (mine, tokio(level)) {
                    let r = m.p99 / b.p99;
                    targets.push(Target {
                        what: format!(
                            "open loop, {} conns, {:.0}% of tokio's max: p99 vs tokio",
                            curve.conns,
                            fraction * 100.0
                        ),
                        server: server.name().into(),
                        measured: format!("{r:.2}x ({} vs {} µs)", us(m.p99), us(b.p99)),
                        bar: "≤ 1.0x".into(),
                        met: Some(r <= 1.0),
                    });
                }
            }
        }
    }
    // Each server's highest load with p99 under 1 ms, every connection count side by side.
    let mut headers = vec!["server".to_string()];
    headers.extend(curves.iter().map(|c| format!("{} connections", c.conns)));
    let refs: Vec<&str> = headers.iter().map(String::as_str).collect();
    let mut t = Table::new("Highest offered load with p99 under 1 ms (open loop, TCP echo)", &refs);
    for server in ECHO_SERVERS {
        if !curves.iter().any(|c| c.max.contains_key(&server)) {
            continue;
        }
        let mut row = vec![server.name().to_string()];
        for curve in curves {
            row.push(match highest_under_1ms(curve, server) {
                _ if !curve.max.contains_key(&server) => "-".into(),
                Some((level, p)) if level + 1 == curve.levels.len() => {
                    format!("≥ {}/s (every level; p99 {} µs)", rate(p.offered), us(p.p99))
                }
                Some((_, p)) => format!(
                    "{}/s ({:.0}% of {}; p99 {} µs)",
                    rate(p.offered),
                    p.offered / curve.reference * 100.0,
                    curve.reference_server.map_or("-", Server::name),
                    us(p.p99)
                ),
                None => format!("none (< {}/s)", rate(curve.levels[0] * curve.reference)),
            });
        }
        t.rows.push(row);
    }
    t.notes.push(
        "The highest level of the table above up to which the server's p99, timed from when each \
         message was due, stays under 1 ms and it answers at least 90% of the offered rate: every \
         level from the lowest to it passed. The true limit lies between that level and the next."
            .into(),
    );
    tables.push(t);
}

/// The churn table, and the backends' churn targets.
fn churn_table(
    plan: &Plan,
    churn: &HashMap<Server, Cell<ChurnCell>>,
    targets: &mut Vec<Target>,
) -> Table {
    let mut t = Table::new(
        format!(
            "Connection churn: connect, 64 bytes, the echo, close ({CHURN_CONNS} clients at once)"
        ),
        &["server", "connections/s", "p50 µs", "p99 µs", "connections per client"],
    );
    let base = churn.get(&THREADS).and_then(|c| c.as_ref().ok()).cloned();
    for server in ECHO_SERVERS {
        let Some(cell) = churn.get(&server) else { continue };
        t.rows.push(match cell {
            Ok(c) => vec![
                server.name().into(),
                with_ratio(rate(c.per_sec), c.per_sec, base.as_ref().map(|b| b.per_sec)),
                with_ratio(us(c.p50), c.p50, base.as_ref().map(|b| b.p50)),
                with_ratio(us(c.p99), c.p99, base.as_ref().map(|b| b.p99)),
                c.msgs.to_string(),
            ],
            Err(why) => {
                vec![server.name().into(), missing(cell), "-".into(), "-".into(), why.clone()]
            }
        });
    }
    let get = |s: Server| churn.get(&s).and_then(|c| c.as_ref().ok());
    for server in BACKENDS {
        let Some(m) = get(server) else { continue };
        for (reference, bar) in [(Server::Tokio, 1.0), (THREADS, 1.5)] {
            if let Some(b) = get(reference) {
                let r = m.per_sec / b.per_sec;
                targets.push(Target {
                    what: format!("churn connections/s vs {}", reference.name()),
                    server: server.name().into(),
                    measured: format!("{r:.2}x ({} vs {})", rate(m.per_sec), rate(b.per_sec)),
                    bar: format!("≥ {bar:.1}x"),
                    met: Some(r >= bar),
                });
            }
        }
    }
    t.notes.push(format!(
        "`pollmux load --churn --conns {CHURN_CONNS}`: each of {CHURN_CONNS} clients opens a \
         connection (non-blocking connect, TCP_NODELAY), sends 64 bytes, reads the echo, closes, and \
         opens the next; latency runs from the connect to the echo's last byte, so a server that \
         leaves connections in its listen backlog is charged for the wait. Medians of {} runs; (x) is \
         the ratio to `threads` (a thread per connection) in the same run. The client takes its \
         source addresses from 127.0.0.1-16 in turn, so TIME_WAIT never runs it out of ports.",
        plan.rounds
    ));
    t
}

/// The UDP fan-in table, and the backends' fan-in targets.
fn fan_in_table(
    plan: &Plan,
    fan_in: &HashMap<(Server, u64), Cell<FanInCell>>,
    targets: &mut Vec<Target>,
) -> Table {
    let mut headers = vec!["server".to_string()];
    for n in &plan.fan_in_senders {
        let s = if *n == 1 { "" } else { "s" };
        headers.push(format!("{n} sender{s}: datagrams/s"));
        headers.push(format!("{n} sender{s}: CPU µs per datagram"));
    }
    headers.push("lost".into());
    let refs: Vec<&str> = headers.iter().map(String::as_str).collect();
    let mut t = Table::new("UDP fan-in: senders against udp-ping", &refs);
    let get = |s: Server, n: u64| fan_in.get(&(s, n)).and_then(|c| c.as_ref().ok());
    for server in &plan.fan_in_servers {
        let mut row = vec![server.name().to_string()];
        let mut lost = 0;
        for &n in &plan.fan_in_senders {
            let base = get(Server::BlockingUdp, n);
            match fan_in.get(&(*server, n)) {
                Some(Ok(c)) => {
                    row.push(with_ratio(rate(c.per_sec), c.per_sec, base.map(|b| b.per_sec)));
                    row.push(with_ratio(
                        format!("{:.2}", c.cpu_us),
                        c.cpu_us,
                        base.map(|b| b.cpu_us),
                    ));
                    lost += c.lost;
                }
                Some(cell) => {
                    row.push(missing(cell));
                    row.push("-".into());
                }
                None => row.extend(["-".to_string(), "-".to_string()]),
            }
        }
        row.push(lost.to_string());
        t.rows.push(row);
    }
    if let Some(&top) = plan.fan_in_senders.iter().max()
        && let Some(b) = get(Server::BlockingUdp, top)
    {
        for server in BACKENDS {
            let Some(m) = get(server, top) else { continue };
            let r = m.per_sec / b.per_sec;
            targets.push(Target {
                what: format!("UDP fan-in, {top} senders: datagrams/s vs blocking loop"),
                server: server.name().into(),
                measured: format!("{r:.2}x ({} vs {})", rate(m.per_sec), rate(b.per_sec)),
                bar: "≥ 0.95x".into(),
                met: Some(r >= 0.95),
            });
            let r = m.cpu_us / b.cpu_us;
            targets.push(Target {
                what: format!("UDP fan-in, {top} senders: CPU per datagram vs blocking loop"),
                server: server.name().into(),
                measured: format!("{r:.2}x ({:.2} vs {:.2} µs)", m.cpu_us, b.cpu_us),
                bar: "≤ 1.05x".into(),
                met: Some(r <= 1.05),
            });
        }
    }
    t.notes.push(format!(
        "Each sender is a UDP socket of one client process (the harness, `--udp-fan-in`, one thread \
         over epoll) that keeps one 64-byte `PING` outstanding and sends the next as soon as the \
         `PONG` arrives (after {} ms without one it counts the datagram lost and sends the next). \
         Datagrams/s counts replies; CPU per datagram is the server's user + system time over the \
         run, from /proc/PID/stat (1/100 s ticks), divided by the replies. Medians of {} runs of \
         {:.1} s; (x) is the ratio to the blocking recvfrom/sendto loop at the same sender count. \
         Nothing is pinned: with one sender the run is a ping-pong, whose rate depends on whether \
         client and server share a CPU or wake each other across CPUs (the UDP ping table above \
         pins both to one CPU for that reason); with many senders each wake-up finds work queued.",
        50, plan.fan_in_rounds, plan.fan_in_secs
    ));
    t
}

/// The slow-handler table, and its targets: every backend answers all clients in
/// about one delay (at most 1.2), the sequential baseline takes one per client.
fn slow_table(plan: &Plan, slow: &SlowResults, targets: &mut Vec<Target>) -> Table {
    let delay = plan.slow_delay_ms as f64 / 1000.0;
    let mut t = Table::new(
        format!(
            "Slow handlers: {SLOW_CLIENTS} clients at once, tcp-upper with a {} s reply delay",
            secs(delay)
        ),
        &["server", "all answered after", "each client answered after"],
    );
    for server in &plan.slow_servers {
        let name = match server {
            Server::Mux(_) => format!("mux ({})", server.name()),
            _ => server.name().to_string(),
        };
        t.rows.push(match slow.get(server) {
            Some(Ok((all, each))) => {
                let each: Vec<String> = each.iter().map(|s| format!("{s:.2}")).collect();
                vec![name, format!("{all:.2} s"), format!("{} s", each.join(", "))]
            }
            Some(cell @ Err(why)) => vec![name, missing(cell), why.clone()],
            None => vec![name, "-".into(), "-".into()],
        });
    }
    let (mux_bar, sequential_bar) = (1.2 * delay, SLOW_CLIENTS as f64 * delay);
    let mut bars: Vec<(Server, &str, String, bool)> =
        BACKENDS.iter().map(|&b| (b, "mux", format!("≤ {} s", secs(mux_bar)), true)).collect();
    bars.push((
        Server::Model("sequential"),
        "sequential",
        format!("≥ {} s", secs(sequential_bar)),
        false,
    ));
    for (server, kind, bar, at_most) in bars {
        if !plan.slow_servers.contains(&server) {
            continue;
        }
        let (measured, met) = match slow.get(&server) {
            Some(Ok((all, _))) => {
                // Printed to the hundredth: a figure that prints as the bar meets it.
                let all_shown = (all * 100.0).round() / 100.0;
                let met = if at_most { all_shown <= mux_bar } else { all_shown >= sequential_bar };
                (format!("{all:.2} s"), Some(met))
            }
            Some(cell) => (missing(cell), None),
            None => ("-".to_string(), None),
        };
        targets.push(Target {
            what: format!("slow handlers: all {SLOW_CLIENTS} answered ({kind})"),
            server: server.name().into(),
            measured,
            bar,
            met,
        });
    }
    t.notes.push(format!(
        "`--reply-delay {}` holds each tcp-upper reply for the delay: `pollmux serve` (the event \
         loop) and `poll_server.py` on a timer (the next reply's due time bounds the wait), the \
         pollmux baselines and the other Python servers in a real sleep. {SLOW_CLIENTS} clients \
         connect, then send one line each at the same moment; the time runs from that moment to each \
         complete reply. A server that overlaps the waits answers all in about one delay; one that \
         serves a client at a time takes one delay per client (pool: one per {POOL_THREADS} clients).",
        plan.slow_delay_ms
    ));
    for server in &plan.slow_servers {
        if let Some(Err(why)) = slow.get(server) {
            t.notes.push(format!("{}: {why}", server.name()));
        }
    }
    t
}

/// Seconds, without a trailing `.0`: `1`, `1.2`, `0.24`.
fn secs(x: f64) -> String {
    let text = format!("{x:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// One line per server: `pick` of its cell at each x (connections, or idle
/// connections) that has one.
fn series_over(
    servers: &[Server],
    xs: &[u64],
    cells: &HashMap<(Server, u64), Cell<EchoCell>>,
    pick: fn(&EchoCell) -> f64,
) -> Vec<Series> {
    servers
        .iter()
        .map(|&server| Series {
            name: server.name().into(),
            points: xs
                .iter()
                .filter_map(|&x| {
                    let cell = cells.get(&(server, x))?.as_ref().ok()?;
                    Some((x as f64, pick(cell)))
                })
                .collect(),
        })
        .collect()
}

/// Writes the SVG plots into `dir`; returns their file names.
pub fn plots(plan: &Plan, results: &Results, dir: &Path) -> Result<Vec<(String, String)>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
    let mut written = Vec::new();
    if let Some(echo) = &results.echo {
        let series = |pick| series_over(&ECHO_SERVERS, &plan.conns, &echo.cells, pick);
        // Latency: a server that cannot serve every connection at once is drawn only where
        // it can (the closed loop times only the connections being served), and says so.
        let latency = |pick: fn(&EchoCell) -> f64| {
            let mut lines = series(pick);
            for line in &mut lines {
                let server = ECHO_SERVERS.iter().find(|s| s.name() == line.name).copied();
                if let Some(server) = server
                    && let Some(why) = plan.conns.iter().find_map(|&c| partial_server(server, c))
                {
                    line.points.retain(|&(c, _)| partial_server(server, c as u64).is_none());
                    line.name = format!("{}: {why}; more not drawn", line.name);
                }
            }
            lines
        };
        let max = plan.conns.iter().copied().max().unwrap_or(1000) as f64;
        let path = dir.join("echo_latency.svg");
        plot::figure(
            &path,
            &[
                Panel {
                    title: "TCP echo p50 round trip (closed loop)".into(),
                    y_desc: "latency (log)".into(),
                    y_fmt: plot::micros,
                    series: latency(|c| c.p50),
                },
                Panel {
                    title: "TCP echo p99 round trip (closed loop)".into(),
                    y_desc: "latency (log)".into(),
                    y_fmt: plot::micros,
                    series: latency(|c| c.p99),
                },
            ],
            "connections",
            || (0.8..max * 1.25).log_scale(),
            plot::whole,
        )?;
        written.push(("echo_latency.svg".into(), "TCP echo round trip against connections".into()));
        let path = dir.join("echo_throughput.svg");
        plot::figure(
            &path,
            &[Panel {
                title: "TCP echo throughput".into(),
                y_desc: "messages/s (log)".into(),
                y_fmt: plot::per_sec,
                series: series(|c| c.msgs_per_sec),
            }],
            "connections",
            || (0.8..max * 1.25).log_scale(),
            plot::whole,
        )?;
        written
            .push(("echo_throughput.svg".into(), "TCP echo messages/s against connections".into()));
    }
    for curve in results.curves.iter().flatten() {
        if curve.reference <= 0.0 {
            continue;
        }
        let lines = |pick: fn(&CurvePoint) -> f64| -> Vec<Series> {
            ECHO_SERVERS
                .iter()
                .filter(|s| curve.max.contains_key(s))
                .map(|&server| {
                    let points: Vec<(f64, f64)> = (0..curve.levels.len())
                        .filter_map(|l| {
                            let p = curve.points.get(&(server, l))?.as_ref().ok()?;
                            Some((p.offered, pick(p)))
                        })
                        .collect();
                    let name = match (partial_server(server, curve.conns), points.is_empty()) {
                        (_, true) => format!("{}: not drawn, no run completed", server.name()),
                        (Some(why), false) => format!("{}: {why}, waits counted", server.name()),
                        (None, false) => server.name().to_string(),
                    };
                    Series { name, points }
                })
                .collect()
        };
        let top = curve.levels.iter().copied().fold(0.0, f64::max) * curve.reference;
        let file = format!("open_loop_echo_{}.svg", curve.conns);
        plot::figure(
            &dir.join(&file),
            &[
                Panel {
                    title: format!("p50 latency from due time, {} conns", curve.conns),
                    y_desc: "latency (log)".into(),
                    y_fmt: plot::micros,
                    series: lines(|p| p.p50),
                },
                Panel {
                    title: format!("p99 latency from due time, {} conns", curve.conns),
                    y_desc: "latency (log)".into(),
                    y_fmt: plot::micros,
                    series: lines(|p| p.p99),
                },
            ],
            "offered load, messages/s (open loop)",
            || 0.0..top * 1.05,
            plot::per_sec,
        )?;
        written.push((
            file,
            format!("Open-loop TCP echo latency against offered load, {} connections", curve.conns),
        ));
    }
    if let Some(idle) = &results.idle {
        let series = |pick| series_over(&IDLE_SERVERS, &plan.idle, &idle.cells, pick);
        let max = plan.idle.iter().copied().max().unwrap_or(10_000) as f64;
        let path = dir.join("idle_latency.svg");
        plot::figure(
            &path,
            &[
                Panel {
                    title: "1 active connection, p50".into(),
                    y_desc: "latency (log)".into(),
                    y_fmt: plot::micros,
                    series: series(|c| c.p50),
                },
                Panel {
                    title: "1 active connection, p99".into(),
                    y_desc: "latency (log)".into(),
                    y_fmt: plot::micros,
                    series: series(|c| c.p99),
                },
            ],
            "idle connections",
            || -(max * 0.03)..max * 1.05,
            plot::whole,
        )?;
        written.push((
            "idle_latency.svg".into(),
            "Round trip of one active connection against idle connections".into(),
        ));
    }
    Ok(written)
}

/// BENCHMARKS.md.
pub fn markdown(
    plan: &Plan,
    machine: &Machine,
    report: &Report,
    plots: &[(String, String)],
    plot_dir: &str,
    elapsed_secs: f64,
) -> String {
    let mut out = String::new();
    out.push_str("# Benchmarks\n\n");
    let _ = writeln!(
        out,
        "Written by `make bench` (`benches/bench/main.rs`) on {}; every figure below is from that one run. \
         Rerun `make bench` to measure your machine: it rewrites this file and the plots in `{plot_dir}/`.\n",
        machine.date
    );
    out.push_str("## Machine\n\n| | |\n|---|---|\n");
    let _ = writeln!(out, "| CPU | {} |", machine.cpu);
    let _ = writeln!(out, "| cores | {} |", machine.cores);
    let _ = writeln!(out, "| memory | {} |", machine.memory);
    let _ = writeln!(out, "| kernel | {} |", machine.kernel);
    let _ = writeln!(out, "| rustc | {} |", machine.rustc);
    let _ = writeln!(out, "| python3 (examples/servers/) | {} |", machine.python);
    let load_after = load_average();
    let _ = writeln!(
        out,
        "| load average (1, 5, 15 min) | {} before the run, {} after |",
        machine.load_before, load_after
    );
    if let Some(busy) = machine.busy_before {
        let _ = writeln!(out, "| CPU time in use the second before the run | {busy:.0}% |");
    }
    if let Some((others, all)) = machine.others_during {
        let _ = writeln!(
            out,
            "| CPU time (user + system) other processes used during the run | {others:.0} s of {all:.0} s ({:.0}%) |",
            others * 100.0 / all.max(1.0)
        );
    }
    let _ = writeln!(
        out,
        "| run | {} interleaved rounds, ~{:.1} s per measured echo run, {:.0} s in all |\n",
        plan.rounds, plan.run_secs, elapsed_secs
    );
    if let Some(warning) = busy_warning(machine.busy_before) {
        let _ = writeln!(out, "**Note:** {warning}\n");
    }
    if let Some((others, all)) = machine.others_during
        && others > 0.1 * all
    {
        let _ = writeln!(
            out,
            "**Note:** other processes used {:.0}% of the machine's CPU time while this ran (the \
             machine is shared): the servers and clients were preempted for whole time slices now \
             and then, which shows most in the tails (p99) and in the open-loop figures, whose \
             client counts its own lateness. Compare figures within this run, not with another.\n",
            others * 100.0 / all
        );
    }
    out.push_str("## Servers\n\n");
    let others = [Server::BlockingUdp, Server::TokioUdp, Server::BlockingArray];
    for server in ECHO_SERVERS.iter().chain(&PYTHON_SERVERS).chain(&others) {
        let _ = writeln!(out, "- **{}**: {}", server.name(), server.describe());
    }
    out.push('\n');
    out.push_str(&report.target_table().markdown("##"));
    out.push('\n');
    for table in &report.tables {
        out.push_str(&table.markdown("##"));
        out.push('\n');
    }
    if !plots.is_empty() {
        out.push_str("## Plots\n\n");
        for (file, caption) in plots {
            let _ = writeln!(out, "![{caption}]({plot_dir}/{file})\n");
        }
    }
    out.push_str(METHOD);
    out
}

/// The closing section of BENCHMARKS.md: how every figure was measured.
const METHOD: &str = "## Method

- **Servers**, each its own process on a free port, ready once it printed `listening <service> <addr>`:
  `pollmux serve --backend poll|select|epoll` (only the services a workload needs), the baselines
  `pollmux serve --model sequential|threads|pool`, and the peer: a tokio `current_thread` echo server,
  one task per connection, TCP_NODELAY (`benches/bench/peers.rs`, run as the harness binary with
  `--tokio-echo-server ADDR`). The floors of the UDP and array workloads are in the same file.
  Beside them, in the echo and slow-handler workloads, the Python reference servers
  (`python3 examples/servers/sequential.py|threaded.py|poll_server.py`, with pollmux's listen
  backlog): the course's three designs again, in CPython, so that the language and the design can
  each be changed alone (the language-and-design table).
- **Load** is `pollmux load --threads 1` (closed loop: each connection keeps one message outstanding,
  every reply byte checked, TCP_NODELAY), a separate process from the server, with one client thread
  so that on 2 cores the client has about one core and the server the other. Each connection count starts with
  growing warm-up runs that also size the measured runs (about the same duration for every server);
  every measured run has its own warm-up of 10 messages per connection. Runs are interleaved (every
  server once, then again) for several rounds; tables show medians over rounds, and ratios to the
  thread-per-connection baseline measured in the same run.
- **Syscalls per message** from the server's own `--stats` totals printed at exit (a fresh server and
  one run), and from `strace -c -f` attached to a fresh server for one run.
- **Open loop** is `pollmux load --rate R --duration S --threads 1`: message k is due at k/R seconds
  on connection k mod N, sent then whether or not earlier replies are back (pipelined; replies
  matched in order, every byte checked), and its latency runs from when it was due. So every figure
  includes the time a message waited before the server got to it: in the socket, behind a stalled
  or saturated server, or in the listen backlog of a server that serves fewer connections than the
  client opened (sequential, the pool). A closed loop cannot see that: it stops sending while the
  server is slow, and times only what it sent (coordinated omission). The client sleeps on a
  timerfd until 30 µs before each due time, then polls, so its own wake-up stays out of the figures;
  on a busy machine its lateness is counted too, as any open-loop client's is. The offered loads are
  fractions of tokio's closed-loop maximum at the same connection count (the echo table's, or a
  probe's), from 10% to 150%; a server is not pushed further once it fell below 90% of the offered
  rate at two levels. The curves are drawn for every server; one that serves fewer connections at a
  time than there are is drawn with its clients' real waits and says so in the legend.
- **Churn** is `pollmux load --churn --conns 16`: each client connects (non-blocking), sends 64 bytes,
  reads the echo and closes, then starts over; latency from the connect. Source addresses rotate over
  127.0.0.1-16 so that the closed connections' TIME_WAIT never exhausts the client's ports.
- **UDP fan-in**: a client process of the harness keeps one datagram outstanding on each of 1, 16 or 64
  sockets for a second; the server's CPU time is read from /proc/PID/stat (utime + stime) before and
  after, and divided by the datagrams answered.
- **Slow handlers**: `--reply-delay 1000` on tcp-upper (the event loop and `poll_server.py` on a
  timer, the baselines and the other Python servers in a sleep), 5 clients send at the same moment,
  and the time until all five are answered is reported.
- **Idle scaling**: the harness opens the idle connections itself (and waits until the server holds
  their descriptors) and measures one active connection with `pollmux load --conns 1`.
- **Array**: a fresh `pollmux serve --tcp-array` (50,000,000 values) per run, one `0:50000000` request
  read by the harness; beside it a blocking server that answers with one blocking send(2) of the same
  buffer.
- **CPUs**: workloads with one active connection (1-connection echo, UDP ping, idle scaling) run the
  server and its client on the same single CPU: a ping-pong is serial, and otherwise each round trip
  would include waking an idle CPU, which on a VM means a halted vCPU (about 35 µs each way on the
  machine this harness was written on, so ~70 µs round trips that say nothing about the servers). The
  1-connection table notes an unpinned run for comparison. Every other workload runs unpinned, client
  and server sharing the machine's cores.
- Performance is never asserted by a test: this file is where it is reported.
";
