//! `--exec`: a command run for each message a group gives the consumer, the payload on its
//! stdin, its exit status the verdict (0 acks, anything else naks), so a shell script can be a
//! worker.

use std::io::{self, Write};
use std::process::{Command, Stdio};

use anyhow::Context;

use crate::delivered::Delivered;

/// What became of one message's command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// It exited 0: the message is done.
    Done,
    /// It failed: the message goes back to the group.
    Failed,
}

/// Runs `command` with `sh -c` for message `m` of `group`, delivered for the `attempt`th time:
/// the payload on its stdin, its stdout and stderr the consumer's, and the message's place in
/// `MBUS_TOPIC`, `MBUS_OFFSET`, `MBUS_GROUP`, `MBUS_ATTEMPT` and `MBUS_TIME`.
pub fn run(command: &str, m: &Delivered<'_>, group: &str, attempt: u32) -> anyhow::Result<Verdict> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .env("MBUS_TOPIC", m.topic)
        .env("MBUS_OFFSET", m.offset.to_string())
        .env("MBUS_GROUP", group)
        .env("MBUS_ATTEMPT", attempt.to_string())
        .env("MBUS_TIME", m.time.to_string())
        .stdin(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run `{command}`"))?;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    // A command that does not read its input is not a failure of the message.
    match stdin.write_all(m.data) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            return Err(e).with_context(|| format!("cannot write to `{command}`"));
        }
        _ => {}
    }
    drop(stdin);
    let status = child
        .wait()
        .with_context(|| format!("cannot wait for `{command}`"))?;
    if status.success() {
        return Ok(Verdict::Done);
    }
    log::warn!(
        "`{command}` {status} for offset {} of {} (attempt {attempt}): the message goes back to \
         group {group}",
        m.offset,
        m.topic
    );
    Ok(Verdict::Failed)
}
