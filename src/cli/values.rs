//! The parsers of flag values: sizes with units, ports or `off`, bounded
//! counts and delays, durations in seconds.

use std::str::FromStr;
use std::time::Duration;

/// A size flag: a number of bytes, optionally with a binary unit (`64KiB`, `16MiB`, `1GiB`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bytes(pub(crate) usize);

impl FromStr for Bytes {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (number, unit) = s.split_at(digits);
        let shift = match unit.trim() {
            "" | "B" => 0,
            "K" | "KiB" => 10,
            "M" | "MiB" => 20,
            "G" | "GiB" => 30,
            _ => {
                return Err(format!(
                    "expected a number of bytes such as 65536, 64KiB, 16MiB or 1GiB, got {s:?}"
                ));
            }
        };
        number.parse::<usize>().ok().and_then(|n| n.checked_mul(1 << shift)).map(Bytes).ok_or_else(
            || format!("expected a number of bytes such as 65536, 64KiB, 16MiB or 1GiB, got {s:?}"),
        )
    }
}

/// A port flag: a number, or `off`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Port(pub(crate) Option<u16>);

impl FromStr for Port {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "off" {
            return Ok(Port(None));
        }
        s.parse()
            .map(|p| Port(Some(p)))
            .map_err(|_| format!("expected a port number 0-65535 or `off`, got {s:?}"))
    }
}

/// The largest `--backlog`: listen(2) takes an int, but the kernel caps it far lower.
const MAX_BACKLOG: u32 = 65535;
/// The largest `--pool-size`.
const MAX_POOL_SIZE: usize = 10_000;
/// The longest `--reply-delay`: one day.
const MAX_REPLY_DELAY_MS: u64 = 24 * 3600 * 1000;

/// `--backlog`: 1 to MAX_BACKLOG.
pub(crate) fn backlog(s: &str) -> Result<u32, String> {
    s.parse()
        .ok()
        .filter(|n| (1..=MAX_BACKLOG).contains(n))
        .ok_or_else(|| format!("expected a listen(2) backlog from 1 to {MAX_BACKLOG}, got {s:?}"))
}

/// `--pool-size`: 1 to MAX_POOL_SIZE.
pub(crate) fn pool_size(s: &str) -> Result<usize, String> {
    s.parse()
        .ok()
        .filter(|n| (1..=MAX_POOL_SIZE).contains(n))
        .ok_or_else(|| format!("expected a number of threads from 1 to {MAX_POOL_SIZE}, got {s:?}"))
}

/// `--reply-delay`: 0 to MAX_REPLY_DELAY_MS milliseconds.
pub(crate) fn reply_delay(s: &str) -> Result<u64, String> {
    s.parse().ok().filter(|&n| n <= MAX_REPLY_DELAY_MS).ok_or_else(|| {
        format!("expected milliseconds from 0 to {MAX_REPLY_DELAY_MS} (one day), got {s:?}")
    })
}

/// A duration flag in seconds: finite and not negative.
/// Capped at 10^9 s (about 31 years) so that any deadline computed from it fits an `Instant`.
pub(crate) fn seconds(flag: &str, value: f64) -> Result<Duration, String> {
    const MAX_SECS: f64 = 1e9;
    Duration::try_from_secs_f64(value).ok().filter(|_| value <= MAX_SECS).ok_or_else(|| {
        format!("{flag} takes a number of seconds from 0 to {MAX_SECS}, got {value}")
    })
}
