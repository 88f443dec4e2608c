//! Peer versions in the formats their `--version` prints, and finding programs.

use super::parse_version;

#[test]
fn versions_are_found_in_either_peer_format() {
    let nats = parse_version("nats-server: v2.9.10");
    assert_eq!(nats.as_deref(), Some("v2.9.10"));
    let redis = "Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64";
    assert_eq!(parse_version(redis).as_deref(), Some("7.0.15"));
    assert_eq!(parse_version("no version here"), None);
}

#[test]
fn programs_are_found_on_the_path_or_not_at_all() {
    assert!(super::find_program("sh").is_some());
    assert_eq!(super::find_program("no-such-program-for-mbus-bench"), None);
}
