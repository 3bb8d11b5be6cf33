//! Runs an emulated Salesforce org on a fixed address until Ctrl-C, for
//! trying leadbridge without an org. Its credentials are the defaults of
//! [`OrgConfig`]; `GET /emulator/leads` lists the Leads it holds.

use clap::Parser;
use salesforce_emulator::{Emulator, OrgConfig};

/// An emulated Salesforce org (in memory; forgotten on exit).
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8081")]
    listen: std::net::SocketAddr,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let listener = std::net::TcpListener::bind(args.listen)?;
    let cfg = OrgConfig::default();
    let emulator = Emulator::start_on(cfg.clone(), listener);
    println!("Salesforce emulator at {}", emulator.base);
    println!("  domainUrl:      {}", emulator.base);
    println!("  consumerKey:    {}", cfg.client_id);
    println!("  consumerSecret: as in the README's quick start");
    println!("  its Leads:      {}/emulator/leads", emulator.base);
    tokio::signal::ctrl_c().await?;
    Ok(())
}
