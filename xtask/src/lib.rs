//! What the project's tasks and its benchmark share: starting, watching and stopping the real
//! binaries as child processes, and finding and building the workspace.

pub mod broker;
pub mod ports;
pub mod process;
pub mod tools;
pub mod workspace;
