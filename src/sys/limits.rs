//! The descriptor limit: getrlimit / setrlimit(RLIMIT_NOFILE).

use nix::sys::resource::{Resource, getrlimit, setrlimit};

use super::{SysError, failed};

/// The soft limit on open descriptors: the most this process may hold.
pub fn nofile() -> Result<u64, SysError> {
    getrlimit(Resource::RLIMIT_NOFILE).map(|(soft, _)| soft).map_err(failed("getrlimit"))
}

/// Raises the soft limit on open descriptors to the hard limit, so the
/// server can hold as many connections as the system lets it. Returns the
/// soft limit before, and the hard limit (the soft limit now).
pub fn raise_nofile() -> Result<(u64, u64), SysError> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(failed("getrlimit"))?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).map_err(failed("setrlimit"))?;
    }
    Ok((soft, hard))
}
