//! `make bench`: what poll, select and epoll cost, and how the multiplexing
//! server compares with sequential, thread-per-connection and thread-pool
//! servers and with a tokio peer. Prints the tables and rewrites
//! BENCHMARKS.md and `benches/plots/*.svg`.
//!
//! `cargo bench --bench bench` runs it all (cargo passes `--bench`). Options after `--`:
//! `--quick` (one short round of everything), `--only echo,syscalls,udp,idle,array`;
//! both write to `target/bench-preview/` instead of the tree. Without `--bench`
//! (`cargo test --all-targets`) it checks its parsers and exits at once.
//!
//! The same binary runs the peers when given one of:
//! `--tokio-echo-server ADDR`, `--blocking-array-server ADDR LEN`, `--blocking-udp-pong ADDR`.

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
use workloads::{BACKENDS, Plan, Server};

/// The workloads, by the names `--only` takes.
const SECTIONS: [&str; 5] = ["echo", "syscalls", "udp", "idle", "array"];

/// Runs a peer, the parser self-check or the benchmark, as the arguments say.
fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: &'static str| args.get(i).map_or(default, String::as_str);
    match arg(0, "") {
        "--tokio-echo-server" => return peers::tokio_echo(arg(1, "127.0.0.1:0")),
        "--blocking-udp-pong" => return peers::blocking_udp_pong(arg(1, "127.0.0.1:0")),
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
    let quick = args.iter().any(|a| a == "--quick");
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
    let machine = Machine::describe();
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
    if wanted("udp") {
        log("2. UDP ping");
        results.udp = Some(workloads::udp(plan, &mut log));
    }
    if wanted("idle") {
        log("3. idle scaling");
        results.idle = Some(workloads::idle(plan, &mut log));
    }
    if wanted("array") {
        log("4. the array");
        results.array = Some(workloads::array(plan, &mut log));
    }
    let elapsed = started.elapsed().as_secs_f64();
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
        let sized = workloads::size_run(proc.addr("tcp-echo"), CONNS, plan.run_secs, None);
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
    ];
    let failed: Vec<&str> = checks.iter().filter(|(_, ok)| !ok).map(|(name, _)| *name).collect();
    if failed.is_empty() {
        println!(
            "bench: no --bench, so only the parser checks ran; `make bench` runs the benchmark"
        );
        println!("bench: {} passed, 0 failed", checks.len());
        ExitCode::SUCCESS
    } else {
        eprintln!("bench: parser checks failed: {failed:?}");
        println!("bench: {} passed, {} failed", checks.len() - failed.len(), failed.len());
        ExitCode::FAILURE
    }
}
