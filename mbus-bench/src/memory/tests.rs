//! Reading VmRSS from a status file and from this very process.

use super::*;

#[test]
fn vm_rss_is_read_in_bytes() {
    let status = "Name:\tredis-server\nVmPeak:\t  9000 kB\nVmRSS:\t    1234 kB\nThreads:\t5\n";
    assert_eq!(vm_rss(status), Some(1234 * 1024));
    assert_eq!(vm_rss("Name:\tx\n"), None);
}

#[test]
fn our_own_rss_is_readable() {
    assert!(rss_bytes(std::process::id()).unwrap() > 0);
}
