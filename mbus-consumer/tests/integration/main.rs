//! Integration tests of the consumer library and command against a fake broker.

mod cli;
mod events;
mod fake_broker;
