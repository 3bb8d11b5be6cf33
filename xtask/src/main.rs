//! `cargo xtask TASK`: the project's everyday tasks, as plain commands so
//! that nothing needs installing. Each task prints what it runs.

use std::process::{Command, ExitCode};

/// The PostgreSQL server the PostgreSQL suite uses unless told otherwise.
const LOCAL_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";

const HELP: &str = "\
cargo xtask TASK

  test               cargo test on SQLite, then the API suite on PostgreSQL
                     (LEADBRIDGE_TEST_POSTGRES_URL, default the local server)
  lint               cargo fmt --check, clippy -D warnings, cargo doc -D warnings
  ci                 .ci/run: everything CI checks
  openapi            regenerate openapi/openapi.json
  screenshots        retake the console's screenshots in docs/console/
  bench [ARGS]       cargo bench --bench throughput -- ARGS
  fuzz [SECONDS]     every fuzz target for SECONDS each (default 60)
  emulator [ARGS]    run the Salesforce emulator (--listen 127.0.0.1:8081)
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((task, rest)) = args.split_first() else {
        print!("{HELP}");
        return ExitCode::SUCCESS;
    };
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    let steps: Vec<Step> = match task.as_str() {
        "test" => {
            let url = std::env::var("LEADBRIDGE_TEST_POSTGRES_URL")
                .unwrap_or_else(|_| LOCAL_POSTGRES.to_string());
            vec![
                cargo(&["test"]),
                cargo(&["test", "--test", "api"]).env("LEADBRIDGE_TEST_POSTGRES_URL", &url),
            ]
        }
        "lint" => vec![
            cargo(&["fmt", "--check"]),
            cargo(&["clippy", "--all-targets", "--", "-D", "warnings"]),
            cargo(&[
                "doc",
                "--no-deps",
                "--workspace",
                "--document-private-items",
            ])
            .env(
                "RUSTDOCFLAGS",
                "-D warnings -A rustdoc::private-intra-doc-links",
            ),
        ],
        "ci" => vec![Step::new("bash", &[".ci/run"])],
        "openapi" => {
            vec![cargo(&["test", "--test", "api", "openapi"]).env("UPDATE_OPENAPI", "1")]
        }
        "screenshots" => {
            vec![cargo(&["test", "--test", "console"]).env("UPDATE_SCREENSHOTS", "1")]
        }
        "bench" => vec![cargo(
            &[&["bench", "--bench", "throughput", "--"], &rest[..]].concat(),
        )],
        "fuzz" => vec![Step::new(
            "fuzz/run.sh",
            &[rest.first().copied().unwrap_or("60")],
        )],
        "emulator" => vec![cargo(
            &[
                &["run", "--release", "-p", "salesforce-emulator", "--"],
                &rest[..],
            ]
            .concat(),
        )],
        "help" | "-h" | "--help" => {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        }
        other => {
            eprint!("unknown task `{other}`\n\n{HELP}");
            return ExitCode::from(2);
        }
    };
    for step in steps {
        if !step.run() {
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

/// One command of a task.
struct Step {
    program: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

impl Step {
    fn new(program: &str, args: &[&str]) -> Self {
        Self {
            program: program.into(),
            args: args.iter().map(|a| a.to_string()).collect(),
            env: Vec::new(),
        }
    }

    fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Runs it in the workspace's root; false when it failed.
    fn run(&self) -> bool {
        let vars: Vec<String> = self.env.iter().map(|(k, _)| format!("{k}=… ")).collect();
        println!(
            "xtask: {}{} {}",
            vars.concat(),
            self.program,
            self.args.join(" ")
        );
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let status = Command::new(&self.program)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(root)
            .status();
        match status {
            Ok(s) => s.success(),
            Err(e) => {
                eprintln!("xtask: could not run {}: {e}", self.program);
                false
            }
        }
    }
}

fn cargo(args: &[&str]) -> Step {
    Step::new(
        &std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()),
        args,
    )
}
