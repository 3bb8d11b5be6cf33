//! The `leadbridge` binary: parses the command line and calls into the library.

use std::process::ExitCode;

use clap::Parser;
use leadbridge::configuration::{
    local_base_url, Cli, Command, ImportArgs, SecretSource, Settings, SettingsArgs,
};
use leadbridge::startup::Application;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime starts");
    let command = cli.command.clone().unwrap_or(Command::Serve);
    match &command {
        Command::Healthcheck => return runtime.block_on(healthcheck(&cli.settings.listen)),
        Command::Import(args) => return runtime.block_on(import(args, &cli.settings)),
        _ => {}
    }
    leadbridge::telemetry::init(
        cli.settings.log_format(),
        leadbridge::telemetry::DEFAULT_FILTER,
        std::io::stdout,
    );
    let result = match command {
        Command::Migrate => runtime.block_on(migrate(&cli.settings)),
        Command::Worker => runtime.block_on(async {
            let (settings, _) = Settings::resolve(&cli.settings)?;
            leadbridge::startup::run_worker_alone(settings).await
        }),
        _ => actix_web::rt::System::with_tokio_rt(|| runtime).block_on(serve(&cli.settings)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "leadbridge stopped");
            eprintln!("leadbridge: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: &SettingsArgs) -> anyhow::Result<()> {
    let (settings, sources) = Settings::resolve(args)?;
    for (what, source) in sources {
        match source {
            SecretSource::Environment => tracing::info!("{what}: from the environment"),
            SecretSource::ExistingFile(p) => {
                tracing::info!(path = %p.display(), "{what}: read from file")
            }
            SecretSource::CreatedFile(p) => {
                tracing::info!(path = %p.display(), "{what}: created (mode 0600)")
            }
        }
    }
    for (path, mode) in leadbridge::configuration::loose_files(&settings.database_url) {
        tracing::warn!(
            path = %path.display(), mode = format!("{mode:o}"),
            "other users can read or write this file; `chmod 600` it"
        );
    }
    tracing::info!(database = %leadbridge::configuration::database_for_logs(&settings.database_url), "starting leadbridge");
    Application::build(settings)
        .await?
        .run_until_stopped()
        .await?;
    Ok(())
}

async fn migrate(args: &SettingsArgs) -> anyhow::Result<()> {
    leadbridge::store::open(&args.database_url).await?;
    tracing::info!(database = %leadbridge::configuration::database_for_logs(&args.database_url), "migrations applied");
    Ok(())
}

/// Streams a backfill file to the service; prints the job's counts. Exit 1 when
/// the upload did not go through (lines rejected by the service do not count).
async fn import(args: &ImportArgs, settings: &SettingsArgs) -> ExitCode {
    let run = async {
        let token = args.token(settings)?;
        let base_url = args.base_url(settings);
        leadbridge::import::run(leadbridge::import::Import {
            file: &args.file,
            connection: &args.connection,
            base_url: &base_url,
            token,
            as_of: args.as_of.as_deref(),
        })
        .await
    };
    match run.await {
        Ok(report) => {
            print!("{}", leadbridge::import::render(&report, &args.connection));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("leadbridge import: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// GETs the local /health/ready: exit 0 on 200, else 1.
async fn healthcheck(listen: &str) -> ExitCode {
    let url = format!("{}/health/ready", local_base_url(listen));
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .build()
        .expect("an HTTP client builds");
    match client.get(&url).send().await {
        Ok(res) if res.status().is_success() => ExitCode::SUCCESS,
        Ok(res) => {
            eprintln!("{url}: {}", res.status());
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("{url}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// mimalloc instead of glibc's malloc: per-thread heaps without the arena
/// locks the committer and the HTTP workers contended on (ingest measured
/// 14% faster side by side). Without transparent huge pages (`no_thp`), whose 2 MiB
/// pages raised the peak RSS of a 100,000-client sync to 93 MiB; glibc's
/// own per-thread arenas had reached 68 MiB there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
