//! `ripsec`: the rust_ipsec userspace helper.

mod abi;
mod genl;
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
}

fn exit_code(e: &genl::Error) -> u8 {
    match e {
        genl::Error::ModuleNotLoaded => exit::MODULE_NOT_LOADED,
        genl::Error::PermissionDenied => exit::PERMISSION_DENIED,
        _ => exit::ERROR,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Stats { json } => stats::query().map(|st| stats::print(&st, json)),
    };
    match result {
        Ok(()) => ExitCode::from(exit::OK),
        Err(e) => {
            eprintln!("ripsec: {e}");
            ExitCode::from(exit_code(&e))
        }
    }
}
