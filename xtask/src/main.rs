//! `cargo xtask`: the project's own tasks, one module each, run as `cargo xtask <task>`.

mod bench;
mod cluster;
mod cluster_bench;
mod crash;
mod crash_clients;
mod demo;
mod fuzz;
mod integration;
mod sim;
mod test;
mod verify;

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
    /// Run the same workloads against mbus, nats-server and redis-server and print a table
    #[command(disable_help_flag = true)]
    Bench(bench::Args),
    /// Start broker A, a bridge, a three-node NATS JetStream cluster, a bridge and broker B
    Cluster(cluster::Args),
    /// Kill a durable broker with SIGKILL again and again and check nothing confirmed is lost
    Crash(crash::Args),
    /// Start a broker, publish a few orders and watch consumers receive them
    Demo,
    /// Fuzz the frame decoder and the broker core with cargo-fuzz
    Fuzz(fuzz::Args),
    /// Run many producers and consumers against one broker and check every delivery
    Integration(integration::Args),
    /// Run the deterministic simulation of the broker core over many seeds
    Sim(sim::Args),
    /// Run every check: workspace tests, a command-line round trip, integration, a short fuzz
    Test(test::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.task {
        Task::Bench(args) => bench::run(&args),
        Task::Cluster(args) if args.bench() => cluster_bench::run(),
        Task::Cluster(args) => cluster::run(&args),
        Task::Crash(args) => crash::run(&args),
        Task::Demo => demo::run(),
        Task::Fuzz(args) => fuzz::run(&args),
        Task::Integration(args) => integration::run(&args),
        Task::Sim(args) => sim::run(&args),
        Task::Test(args) => test::run(&args),
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
