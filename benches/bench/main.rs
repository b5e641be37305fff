//! `make bench`: what poll, select and epoll cost, and how the multiplexing
//! server compares with sequential, thread-per-connection and thread-pool
//! servers, with a tokio peer, and with the Python reference servers of
//! examples/servers/ (the same designs in another language). Prints the tables
//! and rewrites BENCHMARKS.md and `benches/plots/*.svg`.
//!
//! `cargo bench --bench bench` runs it all (cargo passes `--bench`). Options after `--`:
//! `--quick` (one short round of everything; also `BENCH_QUICK=1` in the environment),
//! `--only echo,syscalls,curves,churn,udp,fanin,idle,array,slow`; both write to
//! `target/bench-preview/` instead of the tree. Without `--bench` (`cargo test
//! --all-targets`) it checks its parsers, then runs the newer workloads (open-loop
//! curves, churn, UDP fan-in, slow handlers with a 200 ms delay, the echo workload
//! with the Python servers) on a few servers for a moment each and builds their
//! tables and plots under `target/bench-selfcheck/`.
//!
//! The same binary runs the peers and the fan-in client when given one of:
//! `--tokio-echo-server ADDR`, `--blocking-array-server ADDR LEN`, `--blocking-udp-pong ADDR`,
//! `--tokio-udp-pong ADDR`, `--udp-fan-in ADDR SOCKETS SECS`.

mod fanin;
mod peers;
mod plot;
/// Spawning, signalling and waiting for children: the copy the integration tests use too.
#[path = "../../tests/common/process.rs"]
mod process;
mod procs;
mod report;
mod stat;
mod workloads;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use report::{Machine, Report, Results, Syscalls};
use workloads::{BACKENDS, PYTHON_SERVERS, Plan, Server};

/// The workloads, by the names `--only` takes.
const SECTIONS: [&str; 9] =
    ["echo", "syscalls", "curves", "churn", "udp", "fanin", "idle", "array", "slow"];

/// Runs a peer, the parser self-check or the benchmark, as the arguments say.
fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: &'static str| args.get(i).map_or(default, String::as_str);
    match arg(0, "") {
        "--tokio-echo-server" => return peers::tokio_echo(arg(1, "127.0.0.1:0")),
        "--blocking-udp-pong" => return peers::blocking_udp_pong(arg(1, "127.0.0.1:0")),
        "--tokio-udp-pong" => return peers::tokio_udp_pong(arg(1, "127.0.0.1:0")),
        "--udp-fan-in" => return fanin::run(arg(1, ""), arg(2, "1"), arg(3, "1")),
        "--blocking-array-server" => {
            let Ok(len) = arg(2, "50000000").parse() else {
                eprintln!("--blocking-array-server ADDR LEN: LEN is a count of values");
                return ExitCode::from(2);
            };
            return peers::blocking_array(arg(1, "127.0.0.1:0"), len);
        }
        _ => {}
    }
    if !args.iter().any(|a| a == "--bench") {
        return self_check();
    }
    let quick = args.iter().any(|a| a == "--quick")
        || std::env::var("BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    let only: Option<Vec<String>> = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .map(|list| list.split(',').map(str::to_string).collect());
    if let Some(unknown) = only.iter().flatten().find(|s| !SECTIONS.contains(&s.as_str())) {
        eprintln!("--only: unknown workload {unknown:?}; choose from {SECTIONS:?}");
        return ExitCode::from(2);
    }
    let plan = if quick { Plan::quick() } else { Plan::full() };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let preview = quick || only.is_some();
    let out_dir = if preview { root.join("target/bench-preview") } else { root.to_path_buf() };
    run(&plan, only.as_deref(), &out_dir)
}

/// Runs the workloads, prints the tables, writes BENCHMARKS.md and the plots under `out_dir`.
fn run(plan: &Plan, only: Option<&[String]>, out_dir: &Path) -> ExitCode {
    let mut machine = Machine::describe();
    let ticks_before = process_ticks();
    let started = Instant::now();
    let mut log = |line: &str| eprintln!("[{:6.1} s] {line}", started.elapsed().as_secs_f64());
    match pollmux::sys::limits::raise_nofile() {
        Ok((_, hard)) if hard < 10_100 => log(&format!(
            "RLIMIT_NOFILE hard limit is {hard}: 10,000 idle connections will not fit"
        )),
        Ok(_) => {}
        Err(e) => log(&format!("cannot raise RLIMIT_NOFILE: {e}")),
    }
    log(&format!(
        "{} on {} cores, {}, {}; load average {}, {:.0}% CPU in use",
        machine.cpu,
        machine.cores,
        machine.kernel,
        machine.rustc,
        machine.load_before,
        machine.busy_before.unwrap_or(f64::NAN)
    ));
    if let Some(warning) = report::busy_warning(machine.busy_before) {
        log(&warning);
    }
    let wanted = |s: &str| only.is_none_or(|o| o.iter().any(|x| x == s));
    let mut results = Results::default();
    if wanted("echo") {
        log("1. TCP echo at 1, 10, 100, 1000 connections");
        results.echo = Some(workloads::echo(plan, &mut log));
    }
    if wanted("syscalls") {
        log("syscalls per echoed message at 100 connections");
        results.syscalls = Some(syscalls(plan, &results, &mut log));
    }
    if wanted("curves") {
        log("open-loop latency against offered load");
        results.curves = Some(workloads::curves(plan, results.echo.as_ref(), &mut log));
    }
    if wanted("churn") {
        log("connection churn");
        results.churn = Some(workloads::churn(plan, &mut log));
    }
    if wanted("udp") {
        log("2. UDP ping");
        results.udp = Some(workloads::udp(plan, &mut log));
    }
    if wanted("fanin") {
        log("UDP fan-in");
        results.fan_in = Some(workloads::fan_in(plan, &mut log));
    }
    if wanted("idle") {
        log("3. idle scaling");
        results.idle = Some(workloads::idle(plan, &mut log));
    }
    if wanted("array") {
        log("4. the array");
        results.array = Some(workloads::array(plan, &mut log));
    }
    if wanted("slow") {
        log("slow handlers");
        results.slow = Some(workloads::slow(plan, &mut log));
    }
    let elapsed = started.elapsed().as_secs_f64();
    machine.others_during = others_cpu(ticks_before);
    let report = Report::build(plan, &results);
    println!("\n{}", report.text());
    let plot_dir: PathBuf = out_dir.join("benches/plots");
    let plots = match report::plots(plan, &results, &plot_dir) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("plots: {e}");
            Vec::new()
        }
    };
    let md = report::markdown(plan, &machine, &report, &plots, "benches/plots", elapsed);
    let md_path = out_dir.join("BENCHMARKS.md");
    if let Err(e) = std::fs::create_dir_all(out_dir).and_then(|_| std::fs::write(&md_path, md)) {
        eprintln!("write {}: {e}", md_path.display());
        return ExitCode::FAILURE;
    }
    println!(
        "wrote {} and {} plot(s) in {}; measured for {elapsed:.0} s",
        md_path.display(),
        plots.len(),
        plot_dir.display()
    );
    ExitCode::SUCCESS
}

/// A tcp-upper stand-in for the self-check: a thread per connection reads a line,
/// waits `delay`, answers it ASCII-uppercased. Runs until the process exits.
fn slow_stand_in(delay: std::time::Duration) -> Result<std::net::SocketAddr, String> {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(&stream);
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                    std::thread::sleep(delay);
                    if (&stream).write_all(line.to_ascii_uppercase().as_bytes()).is_err() {
                        return;
                    }
                    line.clear();
                }
            });
        }
    });
    Ok(addr)
}

/// (user + nice + system, all) CPU ticks so far, from the first line of /proc/stat:
/// the time processes ran, without interrupts and softirqs, which no process's
/// own account includes.
fn process_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let ticks: Vec<u64> =
        stat.lines().next()?.split_whitespace().skip(1).filter_map(|t| t.parse().ok()).collect();
    Some((ticks.iter().take(3).sum(), ticks.iter().take(8).sum()))
}

/// CPU seconds used, since `before` (`process_ticks`), by processes other than this
/// harness and its (reaped) children, and all CPU seconds there were.
fn others_cpu(before: Option<(u64, u64)>) -> Option<(f64, f64)> {
    use nix::sys::resource::{UsageWho, getrusage};
    let ((busy0, total0), (busy1, total1)) = (before?, process_ticks()?);
    let secs = |who| {
        getrusage(who).ok().map_or(0.0, |u| {
            let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
            t(u.user_time()) + t(u.system_time())
        })
    };
    let ours = secs(UsageWho::RUSAGE_SELF) + secs(UsageWho::RUSAGE_CHILDREN);
    // /proc/stat counts in USER_HZ ticks: 1/100 s.
    let busy = busy1.saturating_sub(busy0) as f64 / 100.0;
    let total = total1.saturating_sub(total0) as f64 / 100.0;
    Some(((busy - ours).max(0.0), total))
}

/// Syscalls per echoed message at 100 connections: `--stats` of each backend,
/// and strace on each backend and on the tokio peer.
fn syscalls(plan: &Plan, results: &Results, log: &mut dyn FnMut(&str)) -> Syscalls {
    const CONNS: u64 = 100;
    let mut sys = Syscalls { conns: CONNS, ..Syscalls::default() };
    // The message count the echo workload settled on for this server, or a fresh sizing.
    let msgs_for = |server: Server| -> Result<u64, String> {
        if let Some(Ok(cell)) = results.echo.as_ref().and_then(|e| e.cells.get(&(server, CONNS))) {
            return Ok(cell.msgs);
        }
        let proc = server.start("tcp-echo", false, 0)?;
        let sized = workloads::size_run(plan, proc.addr("tcp-echo"), CONNS, plan.run_secs, None);
        proc.stop(std::time::Duration::from_secs(5));
        sized.map(|(m, _)| m)
    };
    for server in BACKENDS {
        let cell = msgs_for(server).and_then(|m| workloads::syscalls_from_stats(server, CONNS, m));
        if let Err(e) = &cell {
            log(&format!("  {} --stats: {e}", server.name()));
        }
        sys.stats.push((server, cell.map_err(|e| workloads::first_line(&e).to_string())));
    }
    match procs::strace_works() {
        Err(why) => {
            log(&format!("  {why}"));
            sys.strace_unavailable = Some(why);
        }
        Ok(()) => {
            for server in [BACKENDS[0], BACKENDS[1], BACKENDS[2], Server::Tokio] {
                let cell = workloads::syscalls_from_strace(server, CONNS, plan.strace_msgs);
                if let Err(e) = &cell {
                    log(&format!("  {} strace: {e}", server.name()));
                }
                sys.strace.push((server, cell.map_err(|e| workloads::first_line(&e).to_string())));
            }
        }
    }
    sys
}

/// Whether `cell` holds a figure; for a Python server, a figure or, where python3
/// is missing, the reason.
fn python_or<T>(server: Server, cell: Option<&workloads::Cell<T>>) -> bool {
    match cell {
        Some(Ok(_)) => true,
        Some(Err(why)) => {
            matches!(server, Server::Python(_))
                && why.starts_with("n/a")
                && procs::python_version().is_err()
        }
        None => false,
    }
}

/// What runs without `--bench` (as under `cargo test --all-targets`): the
/// parsers against known lines, in microseconds, no servers.
fn self_check() -> ExitCode {
    let result = procs::parse_result(
        "RESULT conns=100 msgs=2000 messages=200000 msgs_per_sec=123456.7 p50_us=80.1 p90_us=90 p99_us=120.5 \
         p999_us=300 max_us=900 errors=0",
    );
    let stats = procs::last_stats(
        "[x INFO pollmux] stats: waits 10 ready 30 recvs 20 sends 20 bytes-in 1280",
    );
    let strace = procs::parse_strace(
        "% time     seconds  usecs/call     calls    errors syscall\n\
         ------ ----------- ----------- --------- --------- ----------------\n\
          60.00    0.000600           3       200           epoll_wait\n\
          40.00    0.000400           2       200        10 recvfrom\n\
         ------ ----------- ----------- --------- --------- ----------------\n\
         100.00    0.001000           2       400        10 total\n",
    );
    let ping = procs::parse_ping(
        "PONG from 127.0.0.1:1234: seq=1 time=0.031 ms\n\
         PONG from 127.0.0.1:1234: seq=2 time=25.5 us\n\
         --- 127.0.0.1:1234 ping statistics ---\n\
         2 packets transmitted, 2 received, 0% packet loss, time 0ms\n",
    );
    let checks = [
        ("RESULT line", result.as_ref().is_some_and(|r| r.msgs == 200_000 && r.p999 == 300.0)),
        (
            "stats line",
            stats.as_ref().is_some_and(|s| s.get("waits") == 10 && s.get("bytes-in") == 1280),
        ),
        ("strace summary", strace.as_ref().is_some_and(|s| s.total == 400 && s.calls.len() == 2)),
        ("ping output", ping.sent == 2 && ping.received == 2 && ping.rtts_us == [31.0, 25.5]),
        ("median", stat::median([3.0, 1.0, 2.0]) == 2.0 && stat::median([1.0, 2.0]) == 1.5),
        ("percentile", stat::percentile(&[1.0, 2.0, 3.0, 4.0], 0.5) == 2.0),
        (
            "listening line",
            procs::parse_listening("listening tcp-echo 127.0.0.1:5")
                .is_some_and(|(s, a)| s == "tcp-echo" && a.port() == 5),
        ),
        (
            "open-loop RESULT line",
            procs::parse_result(
                "RESULT conns=10 msgs=5 size=64 threads=1 idle=0 messages=50 secs=0.5 msgs_per_sec=99 \
                 offered_per_sec=100 p50_us=1 p90_us=2 p99_us=3 p999_us=4 max_us=5 errors=0 \
                 idle_closed=0 mode=open over_1ms=7",
            )
            .is_some_and(|r| r.offered == 100.0 && r.over_1ms == 7 && r.msgs_per_sec == 99.0),
        ),
        (
            "/proc/PID/stat CPU time",
            procs::parse_cpu_ticks("42 (a b) c) S 1 2 3 4 5 6 7 8 9 10 250 30 0 0 20 0 1 0 9")
                == Some(280),
        ),
        (
            // Every UDP load comes from one address: far past pollmux's default
            // 1,000 replies a second per source, so every backend is started without it.
            "pollmux serve commands pass --udp-rate 0",
            BACKENDS.iter().all(|b| {
                let command = b.command("udp-ping", &[], 0);
                let args: Vec<_> = command.get_args().collect();
                args.windows(2).any(|w| w[0] == "--udp-rate" && w[1] == "0")
            }),
        ),
        (
            "fan-in RESULT line",
            fanin::FanIn::parse("RESULT sockets=4 sent=10 received=9 lost=1 secs=0.5 x=1")
                .is_some_and(|f| f.per_sec() == 18.0 && f.lost == 1),
        ),
    ];
    let mut failed: Vec<String> =
        checks.iter().filter(|(_, ok)| !ok).map(|(name, _)| name.to_string()).collect();
    let smoke = if failed.is_empty() { smoke_check() } else { Vec::new() };
    let ran = checks.len() + smoke.len();
    failed.extend(smoke.into_iter().filter_map(|(name, ok)| (!ok).then_some(name)));
    if failed.is_empty() {
        println!(
            "bench: no --bench: parser checks and a moment of each newer workload ran; `make bench` runs the benchmark"
        );
        println!("bench: {ran} passed, 0 failed");
        ExitCode::SUCCESS
    } else {
        eprintln!("bench: checks failed: {failed:?}");
        println!("bench: {} passed, {} failed", ran - failed.len(), failed.len());
        ExitCode::FAILURE
    }
}

/// The newer workloads on `Plan::smoke`'s few servers, a moment each, then their
/// tables, targets, plots and BENCHMARKS.md under `target/bench-selfcheck/`: every
/// code path of theirs runs. Returns (check, passed).
fn smoke_check() -> Vec<(String, bool)> {
    let plan = Plan::smoke();
    let started = Instant::now();
    let mut log =
        |line: &str| eprintln!("[smoke {:5.1} s] {line}", started.elapsed().as_secs_f64());
    let results = Results {
        echo: Some(workloads::echo(&plan, &mut log)),
        curves: Some(workloads::curves(&plan, None, &mut log)),
        churn: Some(workloads::churn(&plan, &mut log)),
        fan_in: Some(workloads::fan_in(&plan, &mut log)),
        slow: Some(workloads::slow(&plan, &mut log)),
        ..Results::default()
    };
    let mut checks = Vec::new();
    // The echo workload with the Python servers beside two Rust ones; where
    // python3 is missing, their cells say so instead.
    for &conns in &plan.conns {
        let servers = plan.echo_servers.iter().chain(&PYTHON_SERVERS);
        for &server in servers {
            let cell = results.echo.as_ref().and_then(|e| e.cells.get(&(server, conns)));
            let ok = match server.max_conns() {
                Some(limit) if conns > limit => {
                    cell.is_some_and(|c| c.as_ref().is_err_and(|why| why.starts_with("n/a")))
                }
                _ => python_or(server, cell),
            };
            checks.push((format!("echo: {} at {conns} conns", server.name()), ok));
        }
    }
    let curve = results.curves.as_ref().and_then(|c| c.first());
    for server in [BACKENDS[0], Server::Tokio] {
        for level in 0..plan.curve_levels.len() {
            let ok = curve.and_then(|c| c.points.get(&(server, level))).is_some_and(|p| p.is_ok());
            checks.push((format!("open-loop point: {} at level {level}", server.name()), ok));
        }
    }
    // The sequential server cannot serve every connection at once: its point is its
    // clients' real wait, or it is left out with a reason, never missing silently.
    let sequential = curve.and_then(|c| c.points.get(&(Server::Model("sequential"), 0)));
    checks.push(("open-loop point: sequential has one or a reason".into(), sequential.is_some()));
    for server in &plan.churn_servers {
        let ok = results.churn.as_ref().and_then(|c| c.get(server)).is_some_and(|c| c.is_ok());
        checks.push((format!("churn: {}", server.name()), ok));
    }
    for server in &plan.fan_in_servers {
        for &n in &plan.fan_in_senders {
            let cell = results.fan_in.as_ref().and_then(|f| f.get(&(*server, n)));
            let ok = cell
                .is_some_and(|c| c.as_ref().is_ok_and(|c| c.received > 0 && c.cpu_us.is_finite()));
            checks.push((format!("UDP fan-in: {} with {n} senders", server.name()), ok));
        }
    }
    for server in &plan.slow_servers {
        let cell = results.slow.as_ref().and_then(|slow| slow.get(server));
        checks.push((format!("slow handlers: {}", server.name()), python_or(*server, cell)));
    }
    // The slow-handler clients, against a stand-in that answers each line uppercased
    // after 200 ms on a thread per connection: all five within about one delay.
    let stand_in = slow_stand_in(std::time::Duration::from_millis(200));
    let answered = stand_in.and_then(workloads::slow_clients);
    checks.push((
        "slow-handler clients against a 200 ms stand-in".into(),
        answered.is_ok_and(|(all, each)| each.len() == 5 && (0.2..5.0).contains(&all)),
    ));
    let report = Report::build(&plan, &results);
    let text = report.text();
    checks.push((
        "report: tables of every newer workload".into(),
        ["Open-loop", "Connection churn", "UDP fan-in", "Slow handlers"]
            .iter()
            .all(|t| text.contains(t)),
    ));
    // The slow-handler targets have a verdict: the workload ran (whether they were
    // met is performance, reported, never asserted).
    let verdicts =
        report.targets.iter().filter(|t| t.what.starts_with("slow handlers") && t.met.is_some());
    checks.push(("slow handlers: both targets measured".into(), verdicts.count() == 2));
    checks.push((
        "report: the language-and-design table".into(),
        text.contains("The language and the design") && text.contains("python poll ÷ poll"),
    ));
    let out_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-selfcheck");
    let plots = report::plots(&plan, &results, &out_dir.join("benches/plots"));
    checks.push(("plots".into(), plots.as_ref().is_ok_and(|p| !p.is_empty())));
    let md = report::markdown(
        &plan,
        &Machine::unknown(),
        &report,
        &plots.unwrap_or_default(),
        "benches/plots",
        0.0,
    );
    checks
        .push(("BENCHMARKS.md".into(), std::fs::write(out_dir.join("BENCHMARKS.md"), md).is_ok()));
    log(&format!("{} checks", checks.len()));
    checks
}
