//! Integration tests of the producer library and command against a fake broker.

mod cli;
#[path = "../../../mbus-client/testing/commands.rs"]
mod commands;
mod fake_broker;
mod publish;
