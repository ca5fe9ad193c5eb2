//! `ripsec`: the rust_ipsec userspace helper.

mod abi;
mod check;
mod config;
mod ctl;
mod daemon;
mod genl;
mod monitor;
mod sa;
mod stats;

use std::path::PathBuf;
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
    /// No daemon listens on the control socket.
    pub const DAEMON_NOT_RUNNING: u8 = 5;
    /// The daemon's configuration file is invalid.
    pub const CONFIG_INVALID: u8 = 6;
    /// `ripsec check`: package state does not match address ownership.
    pub const INCONSISTENT: u8 = 7;
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
    /// Run the IKEv2 daemon in the foreground (logs to stderr).
    Daemon {
        /// Configuration file (TOML).
        #[arg(long)]
        config: PathBuf,
        /// Control socket.
        #[arg(long, default_value = ctl::DEFAULT_SOCKET)]
        socket: PathBuf,
        /// Log filter: error, warn, info, debug, trace (default: RUST_LOG, else info).
        #[arg(long)]
        log_level: Option<String>,
    },
    /// Check a daemon configuration file and exit.
    CheckConfig {
        config: PathBuf,
    },
    /// Initiate a connection and wait until it is established.
    Up {
        conn: String,
        #[arg(long, default_value = ctl::DEFAULT_SOCKET)]
        socket: PathBuf,
        /// Seconds to wait for the IKE SA and its Child SA.
        #[arg(long, default_value_t = 15.0)]
        timeout: f64,
        #[arg(long)]
        json: bool,
    },
    /// Delete a connection's IKE SAs (and Child SAs) and wait until they are gone.
    Down {
        conn: String,
        #[arg(long, default_value = ctl::DEFAULT_SOCKET)]
        socket: PathBuf,
        #[arg(long, default_value_t = 15.0)]
        timeout: f64,
        #[arg(long)]
        json: bool,
    },
    /// Show the daemon's connections, IKE SAs and Child SAs.
    Status {
        #[arg(long, default_value = ctl::DEFAULT_SOCKET)]
        socket: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Health check for cluster managers: module loaded, daemon responsive,
    /// package state consistent with address ownership. Exit 0 healthy,
    /// 3 module not loaded, 4 permission denied, 5 daemon not responding,
    /// 7 inconsistent, 1 other error.
    Check {
        #[arg(long, default_value = ctl::DEFAULT_SOCKET)]
        socket: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Make the daemon re-read its configuration (kept unchanged if the file is bad).
    Reload {
        #[arg(long, default_value = ctl::DEFAULT_SOCKET)]
        socket: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

fn init_logging(level: Option<&str>) {
    use tracing_subscriber::EnvFilter;
    let filter = match level {
        Some(l) => EnvFilter::new(l),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).init();
}

fn ctl_result(r: Result<(), ctl::CtlError>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::from(exit::OK),
        Err(e) => {
            eprintln!("ripsec: {}", e.msg);
            ExitCode::from(e.code)
        }
    }
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
        Cmd::Daemon { config, socket, log_level } => {
            init_logging(log_level.as_deref());
            return ExitCode::from(daemon::run(&config, &socket));
        }
        Cmd::CheckConfig { config } => {
            return match config::load(&config) {
                Ok(c) => {
                    println!("{}: {} connection(s) OK", config.display(), c.connections.len());
                    ExitCode::from(exit::OK)
                }
                Err(e) => {
                    eprintln!("ripsec: {e}");
                    ExitCode::from(exit::CONFIG_INVALID)
                }
            };
        }
        Cmd::Up { conn, socket, timeout, json } => return ctl_result(ctl::up(&socket, &conn, timeout, json)),
        Cmd::Down { conn, socket, timeout, json } => return ctl_result(ctl::down(&socket, &conn, timeout, json)),
        Cmd::Status { socket, json } => return ctl_result(ctl::status(&socket, json)),
        Cmd::Check { socket, json } => return ExitCode::from(check::run(&socket, json)),
        Cmd::Reload { socket, json } => return ctl_result(ctl::reload(&socket, json)),
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
