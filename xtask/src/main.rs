//! `cargo xtask`: the project's own tasks, one module each, run as `cargo xtask <task>`.

mod broker;
mod demo;
mod integration;
mod ports;
mod process;
mod verify;
mod workspace;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Tasks for working on mbus. Run them as `cargo xtask <task>`.
#[derive(Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", about)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Start a broker, publish a few orders and watch consumers receive them
    Demo,
    /// Run many producers and consumers against one broker and check every delivery
    Integration(integration::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.task {
        Task::Demo => demo::run(),
        Task::Integration(args) => integration::run(&args),
    };
    // Every child process is owned by a guard inside the task, so by now all of them are gone.
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
