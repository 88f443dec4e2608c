//! Checks on the source itself: the engine does no I/O and has no clock, as ARCHITECTURE.md
//! says.

use std::path::Path;

/// What no file under `src/engine/` may name: the file system, the clocks, sockets.
const FORBIDDEN: [&str; 8] = [
    "std::fs",
    "File::",
    "Instant::now",
    "SystemTime",
    "TcpStream",
    "TcpListener",
    "UdpSocket",
    "mio::",
];

#[test]
fn the_engine_does_no_io_and_reads_no_clock() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/engine");
    let mut checked = 0;
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        checked += 1;
        for (n, line) in text.lines().enumerate() {
            for word in FORBIDDEN {
                if line.contains(word) {
                    found.push(format!("{}:{}: {word}", path.display(), n + 1));
                }
            }
        }
    }
    assert!(
        checked >= 10,
        "only {checked} files under {}",
        dir.display()
    );
    assert!(
        found.is_empty(),
        "the engine does I/O:\n{}",
        found.join("\n")
    );
}
