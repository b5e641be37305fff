//! The signal descriptor: SIGINT, SIGTERM, SIGHUP and SIGUSR1 blocked and delivered through a signalfd in the wait set.

use std::os::fd::{AsFd, BorrowedFd};

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use super::{SysError, failed};

/// The signals read from the descriptor: three ask the server to stop (and
/// drain), SIGUSR1 asks for the fd table.
const SIGNALS: [Signal; 4] = [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP, Signal::SIGUSR1];

/// A signalfd for SIGINT, SIGTERM, SIGHUP and SIGUSR1. While it exists those signals are
/// blocked, so they never interrupt a syscall: they wait, as a readable
/// descriptor, for the loop to read them.
#[derive(Debug)]
pub struct Signals {
    /// The descriptor (from signalfd4).
    fd: SignalFd,
}

impl Signals {
    /// rt_sigprocmask(SIG_BLOCK) then signalfd4(SFD_NONBLOCK | SFD_CLOEXEC).
    pub fn new() -> Result<Self, SysError> {
        let mut mask = SigSet::empty();
        for signal in SIGNALS {
            mask.add(signal);
        }
        mask.thread_block().map_err(failed("rt_sigprocmask"))?;
        let fd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .map_err(failed("signalfd4"))?;
        Ok(Signals { fd })
    }

    /// read(2) of one `struct signalfd_siginfo` (128 bytes): the signal, if one is pending.
    pub fn read(&self) -> Result<Option<Signal>, SysError> {
        let info = self.fd.read_signal().map_err(failed("read"))?;
        Ok(info.and_then(|info| Signal::try_from(info.ssi_signo as i32).ok()))
    }

    /// The descriptor, for the wait set.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
