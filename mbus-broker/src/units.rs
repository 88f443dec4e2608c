//! Sizes and durations on the command line, with their units: `256MiB`, `1GB`, `30s`, `1h30m`,
//! and plain numbers as before (bytes, seconds).

use std::time::Duration;

/// A size in bytes: a plain number, or one with a unit (`KiB`, `MiB`, `GiB`, `KB`, `MB`, `GB`,
/// ...), as `bytesize` reads them.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let bytes = match s.trim().parse::<u64>() {
        Ok(n) => n,
        Err(_) => s
            .parse::<bytesize::ByteSize>()
            .map_err(|e| format!("expected a size such as 4096, 256KiB or 1GB, found `{s}`: {e}"))?
            .as_u64(),
    };
    usize::try_from(bytes).map_err(|_| format!("{s} is more than this machine can address"))
}

/// A size that must fit 32 bits, such as the frame limit.
pub fn parse_size_u32(s: &str) -> Result<u32, String> {
    let bytes = parse_size(s)?;
    u32::try_from(bytes).map_err(|_| format!("{s} is over the largest allowed, 4 GiB less a byte"))
}

/// A positive duration: a plain number of seconds (`10`, `0.5`), or one with units as
/// `humantime` reads them (`500ms`, `30s`, `10m`, `1h 30m`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let duration = match s.trim().parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs >= 0.0 => Duration::from_secs_f64(secs),
        Ok(_) => return Err(format!("expected a positive duration, found `{s}`")),
        Err(_) => humantime::parse_duration(s).map_err(|e| {
            format!("expected a duration such as 10, 500ms, 30s or 1h, found `{s}`: {e}")
        })?,
    };
    if duration.is_zero() {
        return Err(format!("expected a positive duration, found `{s}`"));
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_with_and_without_units() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("256KiB"), Ok(256 << 10));
        assert_eq!(parse_size("256MiB"), Ok(256 << 20));
        assert_eq!(parse_size("1GB"), Ok(1_000_000_000));
        assert_eq!(parse_size("1 GiB"), Ok(1 << 30));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("-1").is_err());
        assert_eq!(parse_size_u32("1MiB"), Ok(1 << 20));
        assert!(parse_size_u32("4GiB").is_err());
    }

    #[test]
    fn durations_read_with_and_without_units() {
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        for bad in ["0", "0s", "-3", "soon", "inf"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
