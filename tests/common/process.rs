//! Child processes, the generic half: spawn with piped output, wait for a
//! server's `listening <service> <addr>` lines, gather stderr as it arrives,
//! signal through nix, wait or run to the end within a deadline.
//!
//! One copy for two users: the integration tests (`tests/common/mod.rs`, which
//! panics on failure) and the bench harness (`benches/bench/procs.rs`, which
//! reports failures in its tables), the latter through
//! `#[path = "../../tests/common/process.rs"] mod process;`. So everything here
//! returns errors instead of panicking, and neither user needs all of it.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// A child's stderr as it arrives, and a signal each time it grows.
#[derive(Default)]
pub struct StderrLog {
    /// Everything read so far.
    text: Mutex<String>,
    /// Notified after each read.
    grew: Condvar,
}

impl StderrLog {
    /// Everything the child wrote to stderr so far.
    pub fn text(&self) -> String {
        self.text.lock().unwrap().clone()
    }

    /// Waits until `done` holds for all of stderr so far (at most `deadline`)
    /// and returns it all; on time-out, returns it all as the error.
    pub fn wait_until(
        &self,
        deadline: Duration,
        done: impl Fn(&str) -> bool,
    ) -> Result<String, String> {
        let until = Instant::now() + deadline;
        let mut text = self.text.lock().unwrap();
        while !done(&text) {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(text.clone());
            }
            text = self.grew.wait_timeout(text, left).unwrap().0;
        }
        Ok(text.clone())
    }
}

/// A spawned child whose stdout arrives line by line over a channel and whose
/// stderr is gathered by a thread. Not killed on drop: its owner decides.
pub struct Spawned {
    /// The child; `None` once `wait_timeout` has taken it.
    pub child: Option<Child>,
    /// Its process id, for kill(2) and /proc.
    pub pid: i32,
    /// Its stdout, one line per message; disconnected at EOF.
    pub stdout: mpsc::Receiver<String>,
    /// Its stderr so far.
    pub stderr: Arc<StderrLog>,
    /// Reads stderr into `stderr` until EOF; joined by `join_stderr`.
    stderr_thread: Option<JoinHandle<()>>,
}

impl Spawned {
    /// Spawns `command` with stdin from /dev/null and stdout and stderr piped.
    pub fn spawn(command: &mut Command) -> io::Result<Spawned> {
        command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn()?;
        let pid = child.id() as i32;
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let log = Arc::new(StderrLog::default());
        let mut stderr = child.stderr.take().expect("piped stderr");
        let sink = Arc::clone(&log);
        let stderr_thread = thread::spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                match stderr.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        sink.text.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
                        sink.grew.notify_all();
                    }
                }
            }
        });
        Ok(Spawned {
            child: Some(child),
            pid,
            stdout: rx,
            stderr: log,
            stderr_thread: Some(stderr_thread),
        })
    }

    /// Everything the child wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.text()
    }

    /// Reads stdout until every service in `wanted` printed `listening <service> <addr>`,
    /// within `deadline`. `strict`: any other line, a service not wanted or a second
    /// line for one is an error; otherwise such lines are skipped.
    pub fn listening(
        &mut self,
        wanted: &[&str],
        strict: bool,
        deadline: Duration,
    ) -> Result<HashMap<String, SocketAddr>, String> {
        let until = Instant::now() + deadline;
        let mut addrs = HashMap::new();
        while wanted.iter().any(|s| !addrs.contains_key(*s)) {
            let left = until.saturating_duration_since(Instant::now());
            let line = match self.stdout.recv_timeout(left) {
                Ok(line) => line,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    return Err(format!("printed only {addrs:?} within {deadline:?}"));
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self.child.as_mut().map(|c| c.wait());
                    return Err(format!(
                        "closed stdout ({status:?}) after printing only {addrs:?}"
                    ));
                }
            };
            match parse_listening(&line) {
                Some((service, addr)) if !strict || wanted.contains(&service.as_str()) => {
                    let again = addrs.insert(service, addr).is_some();
                    if again && strict {
                        return Err(format!("second listening line {line:?}"));
                    }
                }
                Some(_) => {
                    return Err(format!(
                        "listening line {line:?} for a service that is not enabled ({wanted:?})"
                    ));
                }
                None if strict => {
                    return Err(format!(
                        "stdout line {line:?} is not `listening <service> <address>`"
                    ));
                }
                None => {}
            }
        }
        Ok(addrs)
    }

    /// Sends `signal` to the child.
    pub fn signal(&self, signal: libc::c_int) -> nix::Result<()> {
        send_signal(self.pid, signal)
    }

    /// Waits for the child to exit, at most `deadline`; past it, SIGKILL.
    /// Returns its status and whether it had to be killed.
    pub fn wait_timeout(&mut self, deadline: Duration) -> io::Result<(ExitStatus, bool)> {
        let child = self.child.take().ok_or_else(|| io::Error::other("already waited for"))?;
        wait_timeout(child, deadline)
    }

    /// Waits for the stderr thread, which ends at the child's exit (or once every
    /// process holding the pipe has closed it).
    pub fn join_stderr(&mut self) {
        if let Some(t) = self.stderr_thread.take() {
            let _ = t.join();
        }
    }

    /// Stdout lines that arrived and were not read yet.
    pub fn later_stdout(&self) -> Vec<String> {
        self.stdout.try_iter().collect()
    }
}

/// Waits for `child` to exit, at most `deadline`; past it, SIGKILL and wait.
/// Returns its status and whether it had to be killed.
pub fn wait_timeout(mut child: Child, deadline: Duration) -> io::Result<(ExitStatus, bool)> {
    let pid = child.id() as i32;
    let (tx, rx) = mpsc::channel();
    let waiter = thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let (status, killed) = match rx.recv_timeout(deadline) {
        Ok(status) => (status, false),
        Err(_) => {
            let _ = send_signal(pid, libc::SIGKILL);
            (rx.recv().map_err(|_| io::Error::other("waiter thread died"))?, true)
        }
    };
    let _ = waiter.join();
    Ok((status?, killed))
}

/// Runs `command` to its end with stdin from /dev/null and output captured; past
/// `deadline` it is killed. Returns the output and whether it had to be killed.
pub fn run_to_end(command: &mut Command, deadline: Duration) -> io::Result<(Output, bool)> {
    let child =
        command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    let pid = child.id() as i32;
    let (tx, rx) = mpsc::channel();
    let waiter = thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let (out, killed) = match rx.recv_timeout(deadline) {
        Ok(out) => (out, false),
        Err(_) => {
            let _ = send_signal(pid, libc::SIGKILL);
            (rx.recv().map_err(|_| io::Error::other("waiter thread died"))?, true)
        }
    };
    let _ = waiter.join();
    Ok((out?, killed))
}

/// `listening <service> <address>` into its parts.
pub fn parse_listening(line: &str) -> Option<(String, SocketAddr)> {
    let mut words = line.split(' ');
    let (Some("listening"), Some(service), Some(addr), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return None;
    };
    Some((service.to_string(), addr.parse().ok()?))
}

/// kill(2) through nix, which needs no `unsafe`.
pub fn send_signal(pid: i32, signal: libc::c_int) -> nix::Result<()> {
    let signal = nix::sys::signal::Signal::try_from(signal)?;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal)
}
