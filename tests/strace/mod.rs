//! pollmux under `strace -f -o FILE`, and that file read back as one `Call` per syscall.
//!
//! The server is started under strace from its first instruction (no attach,
//! so no interrupted call to restart), and the trace is read only after it has
//! exited, when strace has written and closed the file.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;

use crate::common::{PROCESS_DEADLINE, SERVICES, parse_listening_line};

/// True when `strace` can be run; otherwise fails under CI, or prints
/// `skipped: strace not found` (see `common::tool_present`).
pub fn strace_found() -> bool {
    let found = Command::new("strace")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    crate::common::tool_present(if found { Ok(()) } else { Err("strace not found".into()) })
}

/// `pollmux serve` running under `strace -f`, every syscall traced.
pub struct TracedServer {
    /// strace; pollmux is its child.
    strace: Option<Child>,
    /// pollmux itself, the process to signal.
    pid: libc::pid_t,
    addrs: HashMap<String, SocketAddr>,
    trace: PathBuf,
    stderr: Arc<Mutex<String>>,
}

impl TracedServer {
    /// Starts `strace -f -o <tmp>/<label>.trace pollmux serve --backend BACKEND`
    /// with every service on port 0, then `extra_args`, and waits for the
    /// `listening` lines. Returns `None` (after saying so) when strace is absent.
    pub fn start(label: &str, backend: &str, extra_args: &[&str]) -> Option<TracedServer> {
        if !strace_found() {
            return None;
        }
        let trace = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("syscall-budget-{label}-{backend}.trace"));
        let mut command = Command::new("strace");
        // -s 64: strings long enough to show the marker datagrams whole.
        command.args(["-f", "-s", "64", "-o"]).arg(&trace).arg("--");
        command.arg(env!("CARGO_BIN_EXE_pollmux")).args(["serve", "--backend", backend]);
        for service in SERVICES {
            command.args([format!("--{service}"), "0".into()]);
        }
        command.args(extra_args);
        let mut strace = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn strace");

        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&stderr);
        let mut err = strace.stderr.take().unwrap();
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = err.read(&mut buf) {
                sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let (tx, lines) = mpsc::channel();
        let out = strace.stdout.take().unwrap();
        thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });

        let mut server =
            TracedServer { strace: Some(strace), pid: 0, addrs: HashMap::new(), trace, stderr };
        while server.addrs.len() < SERVICES.len() {
            // The deadline only turns a hang into a failure.
            let line = lines.recv_timeout(PROCESS_DEADLINE).unwrap_or_else(|e| {
                panic!("no listening lines from pollmux under strace ({e}):\n{}", server.stderr())
            });
            let (name, addr) = parse_listening_line(&line)
                .unwrap_or_else(|| panic!("unexpected stdout line {line:?}"));
            server.addrs.insert(name, addr);
        }
        let strace_pid = server.strace.as_ref().unwrap().id() as libc::pid_t;
        server.pid = child_of(strace_pid)
            .unwrap_or_else(|| panic!("no child of strace (pid {strace_pid}) in /proc"));
        Some(server)
    }

    /// The address a service announced.
    pub fn addr(&self, service: &str) -> SocketAddr {
        self.addrs[service]
    }

    /// What strace and pollmux wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Sends SIGTERM to pollmux (not to strace, which would detach).
    pub fn terminate(&self) {
        let rc = send_signal(self.pid, libc::SIGTERM);
        assert!(rc.is_ok(), "kill({}, SIGTERM)", self.pid);
    }

    /// Waits for pollmux (and so strace) to exit, asserts it exited cleanly,
    /// and returns the trace.
    pub fn finish(mut self) -> Vec<Call> {
        let mut strace = self.strace.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let waiter = thread::spawn(move || {
            let _ = tx.send(strace.wait());
        });
        let status: ExitStatus = match rx.recv_timeout(PROCESS_DEADLINE) {
            Ok(status) => status.expect("wait for strace"),
            Err(_) => {
                let _ = send_signal(self.pid, libc::SIGKILL);
                let _ = waiter.join();
                panic!("pollmux under strace did not exit:\n{}", self.stderr());
            }
        };
        let _ = waiter.join();
        assert!(status.success(), "pollmux under strace: {status}\n{}", self.stderr());
        let text = std::fs::read_to_string(&self.trace)
            .unwrap_or_else(|e| panic!("reading {}: {e}", self.trace.display()));
        parse(&text)
    }

    /// Where the trace is written.
    pub fn trace_path(&self) -> &std::path::Path {
        &self.trace
    }
}

impl Drop for TracedServer {
    fn drop(&mut self) {
        if let Some(mut strace) = self.strace.take() {
            let _ = send_signal(self.pid, libc::SIGKILL);
            let _ = strace.wait();
        }
        if thread::panicking() {
            eprintln!(
                "---- strace / pollmux stderr ----\n{}---- trace: {} ----",
                self.stderr(),
                self.trace.display()
            );
        }
    }
}

/// The process whose parent is `ppid`, found by reading /proc/*/stat.
fn child_of(ppid: libc::pid_t) -> Option<libc::pid_t> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<libc::pid_t>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // `pid (comm) state ppid ...`; comm may contain spaces and parentheses.
        let after_comm = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
        if after_comm.split_whitespace().nth(1).and_then(|p| p.parse().ok()) == Some(ppid) {
            return Some(pid);
        }
    }
    None
}

// ---------------------------------------------------------------- the trace

/// One syscall as strace printed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The thread that made it (strace -f prefixes every line with it).
    pub pid: u32,
    /// `poll`, `recvfrom`, ...
    pub name: String,
    /// Everything between the parentheses, as printed.
    pub args: String,
    /// Everything after ` = `: `1 ([{fd=4, revents=POLLIN}])`, `-1 EAGAIN (...)`, `?`.
    pub ret: String,
}

/// How long a wait call was allowed to block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timeout {
    /// -1 or NULL: until something is ready.
    Infinite,
    /// 0: return at once (a poll of the current state).
    Zero,
    /// A deadline.
    Finite,
}

/// The wait calls of the three backends, with the variants a libc may use instead.
pub const WAITS: &[&str] = &[
    "poll",
    "ppoll",
    "select",
    "_newselect",
    "pselect6",
    "epoll_wait",
    "epoll_pwait",
    "epoll_pwait2",
];

impl Call {
    /// The number it returned, if it returned one (`?` for exit_group).
    pub fn result(&self) -> Option<i64> {
        self.ret.split_whitespace().next()?.parse().ok()
    }

    /// The errno name of a failed call: `EAGAIN` in `-1 EAGAIN (Resource ...)`.
    pub fn errno(&self) -> Option<&str> {
        let mut words = self.ret.split_whitespace();
        (words.next()? == "-1").then(|| words.next()).flatten()
    }

    /// The arguments, split at the commas between them (not inside `[]`, `{}`, `()` or strings).
    pub fn arg_list(&self) -> Vec<&str> {
        split_args(&self.args)
    }

    /// The first argument as a descriptor number.
    pub fn fd(&self) -> Option<i32> {
        self.arg_list().first()?.parse().ok()
    }

    /// True for poll, select, epoll_wait and their variants.
    pub fn is_wait(&self) -> bool {
        WAITS.contains(&self.name.as_str())
    }

    /// The timeout a wait call was given.
    pub fn timeout(&self) -> Option<Timeout> {
        let args = self.arg_list();
        let (arg, in_millis) = match self.name.as_str() {
            "poll" => (args.get(2)?, true),
            "epoll_wait" | "epoll_pwait" => (args.get(3)?, true),
            "ppoll" => (args.get(2)?, false),
            "epoll_pwait2" => (args.get(3)?, false),
            "select" | "_newselect" | "pselect6" => (args.get(4)?, false),
            _ => return None,
        };
        Some(if in_millis {
            match arg.parse::<i64>().ok()? {
                t if t < 0 => Timeout::Infinite,
                0 => Timeout::Zero,
                _ => Timeout::Finite,
            }
        } else if *arg == "NULL" {
            Timeout::Infinite
        } else if arg.chars().filter(char::is_ascii_digit).all(|c| c == '0') {
            // {tv_sec=0, tv_nsec=0} or {tv_sec=0, tv_usec=0}
            Timeout::Zero
        } else {
            Timeout::Finite
        })
    }

    /// True when a poll or select call asked to hear about writability
    /// (epoll asks with epoll_ctl instead: see `asks_epollout`).
    pub fn waits_for_writable(&self) -> bool {
        let args = self.arg_list();
        match self.name.as_str() {
            "poll" | "ppoll" => args.first().is_some_and(|fds| fds.contains("POLLOUT")),
            "select" | "_newselect" | "pselect6" => {
                args.get(2).is_some_and(|set| *set != "NULL" && *set != "[]")
            }
            _ => false,
        }
    }

    /// True for an epoll_ctl that registers interest in EPOLLOUT.
    pub fn asks_epollout(&self) -> bool {
        self.name == "epoll_ctl" && self.args.contains("EPOLLOUT")
    }
}

impl std::fmt::Display for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}({}) = {}", self.name, self.args, self.ret)
    }
}

/// Reads `strace -f` output. A call another thread's line interrupted is
/// printed as `name(args <unfinished ...>` and later `<... name resumed>rest`:
/// the halves are joined into one call, at the position of the second.
/// Signal (`--- ... ---`) and exit (`+++ ... +++`) lines are skipped.
pub fn parse(text: &str) -> Vec<Call> {
    let mut calls = Vec::new();
    let mut unfinished: HashMap<u32, (String, String)> = HashMap::new();
    for line in text.lines() {
        let (pid, rest) = split_pid(line);
        let rest = skip_timestamp(rest);
        if rest.starts_with("---") || rest.starts_with("+++") || rest.is_empty() {
            continue;
        }
        let whole = if let Some(resumed) = rest.strip_prefix("<... ") {
            let Some((name, tail)) = resumed.split_once(" resumed>") else { continue };
            let Some((first_name, head)) = unfinished.remove(&pid) else { continue };
            debug_assert_eq!(first_name, name);
            format!("{name}({head}{tail}")
        } else {
            rest.to_string()
        };
        if let Some(head) = whole.strip_suffix(" <unfinished ...>") {
            if let Some((name, args)) = head.split_once('(') {
                unfinished.insert(pid, (name.to_string(), args.to_string()));
            }
            continue;
        }
        if let Some(call) = parse_call(pid, &whole) {
            calls.push(call);
        }
    }
    calls
}

/// `1234 rest` -> (1234, "rest"); a line without a pid gets 0.
fn split_pid(line: &str) -> (u32, &str) {
    let digits = line.len() - line.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    match line[..digits].parse() {
        Ok(pid) if line[digits..].starts_with(' ') => (pid, line[digits..].trim_start()),
        _ => (0, line),
    }
}

/// Skips a `-t`/`-tt`/`-ttt` timestamp (`12:34:56.789012 `), if any.
fn skip_timestamp(rest: &str) -> &str {
    match rest.split_once(' ') {
        Some((stamp, after))
            if !stamp.is_empty()
                && stamp.chars().all(|c| c.is_ascii_digit() || c == ':' || c == '.') =>
        {
            after.trim_start()
        }
        _ => rest,
    }
}

/// `name(args) = ret` into a call. The last `) = ` ends the arguments: a
/// return value never contains one, a quoted argument may.
fn parse_call(pid: u32, text: &str) -> Option<Call> {
    let (name, after) = text.split_once('(')?;
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return None;
    }
    // strace pads short calls to a column: `close(11)         = 0`.
    let (args, ret) = after
        .rmatch_indices(" = ")
        .map(|(at, _)| (after[..at].trim_end(), &after[at + 3..]))
        .find(|(args, _)| args.ends_with(')'))?;
    let args = &args[..args.len() - 1];
    Some(Call { pid, name: name.into(), args: args.into(), ret: ret.trim().into() })
}

/// Splits strace's argument text at the top-level `, `.
fn split_args(args: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut in_string, mut escaped, mut start) = (0i32, false, false, 0);
    let bytes = args.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' | b'(' => depth += 1,
            b']' | b'}' | b')' => depth -= 1,
            b',' if depth == 0 => {
                out.push(args[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    if !args.trim().is_empty() {
        out.push(args[start..].trim());
    }
    out
}

/// kill(2) through nix, which needs no `unsafe`.
fn send_signal(pid: i32, signal: libc::c_int) -> nix::Result<()> {
    let signal = nix::sys::signal::Signal::try_from(signal)?;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_complete_split_and_other_lines() {
        let text = "\
17425 poll([{fd=3, events=POLLIN}, {fd=11, events=POLLIN}], 2, 5000) = 1 ([{fd=11, revents=POLLIN|POLLHUP}])
17425 23:51:02.171409 recvfrom(11, \"a) = b\", 65536, 0, NULL, NULL) = 6
17425 epoll_wait(3,  <unfinished ...>
17426 close(7)                          = 0
17425 <... epoll_wait resumed>[{events=EPOLLIN, data={u32=4, u64=4}}], 256, -1) = 1
17425 --- SIGTERM {si_signo=SIGTERM, si_code=SI_USER} ---
17425 accept4(5, 0x7ffc87fdb1b0, [128], SOCK_CLOEXEC|SOCK_NONBLOCK) = -1 EAGAIN (Resource temporarily unavailable)
17425 pselect6(12, [3 4], [11], NULL, {tv_sec=0, tv_nsec=0}, NULL) = 0 (Timeout)
17425 exit_group(0)                     = ?
17425 +++ exited with 0 +++
";
        let calls = parse(text);
        let names: Vec<&str> = calls.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            ["poll", "recvfrom", "close", "epoll_wait", "accept4", "pselect6", "exit_group"]
        );
        assert_eq!(calls[0].timeout(), Some(Timeout::Finite));
        assert_eq!(calls[0].result(), Some(1));
        assert_eq!(calls[0].arg_list().len(), 3);
        assert_eq!(calls[1].args, "11, \"a) = b\", 65536, 0, NULL, NULL");
        assert_eq!(calls[1].fd(), Some(11));
        assert_eq!(calls[2].pid, 17426);
        assert_eq!(calls[3].timeout(), Some(Timeout::Infinite));
        assert_eq!(calls[3].arg_list().len(), 4);
        assert_eq!(calls[4].errno(), Some("EAGAIN"));
        assert_eq!(calls[4].result(), Some(-1));
        assert_eq!(calls[5].timeout(), Some(Timeout::Zero));
        assert!(calls[5].waits_for_writable());
        assert!(!calls[0].waits_for_writable());
        assert_eq!(calls[6].result(), None);
    }
}
