//! `ripsec`: the rust_ipsec userspace helper.

mod abi;
mod genl;
mod monitor;
mod sa;
mod stats;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit codes, documented in the README for cluster managers.
pub mod exit {
    pub const OK: u8 = 0;
    pub const ERROR: u8 = 1;
    /// clap's own code for bad usage.
    pub const USAGE: u8 = 2;
    pub const MODULE_NOT_LOADED: u8 = 3;
    pub const PERMISSION_DENIED: u8 = 4;
}

#[derive(Parser)]
#[command(name = "ripsec", version, about = "rust_ipsec: IPsec for Linux high-availability clusters")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Show the kernel module's version, crypto backend and counters for this network namespace.
    Stats {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Static SAs in the module (keys are write-only).
    #[command(subcommand)]
    Sa(sa::SaCmd),
    /// Security policies in the module.
    #[command(subcommand)]
    Policy(sa::PolicyCmd),
    /// Print the module's events: acquire, spi_miss, expire.
    Monitor {
        #[arg(long)]
        json: bool,
        /// Stop after this many events.
        #[arg(long)]
        count: Option<u64>,
        /// Stop after this many seconds.
        #[arg(long)]
        timeout: Option<f64>,
    },
}

fn exit_code(e: &genl::Error) -> u8 {
    match e {
        genl::Error::ModuleNotLoaded => exit::MODULE_NOT_LOADED,
        genl::Error::PermissionDenied => exit::PERMISSION_DENIED,
        genl::Error::Usage(_) => exit::USAGE,
        _ => exit::ERROR,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Stats { json } => stats::query().map(|st| stats::print(&st, json)),
        Cmd::Sa(c) => sa::sa(c),
        Cmd::Policy(c) => sa::policy(c),
        Cmd::Monitor { json, count, timeout } => monitor::run(json, count, timeout),
    };
    match result {
        Ok(()) => ExitCode::from(exit::OK),
        Err(e) => {
            eprintln!("ripsec: {e}");
            ExitCode::from(exit_code(&e))
        }
    }
}
