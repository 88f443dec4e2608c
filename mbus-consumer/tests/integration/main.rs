//! Integration tests of the consumer library and command against a fake broker.

mod cli;
#[path = "../../../mbus-client/testing/commands.rs"]
mod commands;
mod events;
mod fake_broker;
