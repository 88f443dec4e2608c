//! Integration tests of the producer library and command against a fake broker.

mod cli;
mod fake_broker;
mod publish;
