//! HTTP load from `wrk`, a separate process, so the load generator is not what
//! limits the rate: pre-signed unique requests written just before a run
//! (signatures expire after 300 s), replayed by a Lua script, optionally paced
//! to a fixed rate. The server's CPU time is read from /proc around the run.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use secrecy::SecretString;

/// Replays the requests of `$WRK_REQUESTS` (each: its length on a line, then
/// its bytes), paced to `$WRK_RATE` per second in all when that is set, and
/// prints one JSON line.
const SCRIPT: &str = r#"
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } lb_timespec;
int clock_gettime(int clk, lb_timespec *tp);
]]
local ts = ffi.new("lb_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local reqs, n, i = {}, 0, 0
local interval, slot = 0, 0

function init(args)
  local f = assert(io.open(os.getenv("WRK_REQUESTS"), "rb"))
  while true do
    local len = f:read("*l")
    if not len then break end
    n = n + 1
    reqs[n] = f:read(tonumber(len))
  end
  f:close()
  local rate = tonumber(os.getenv("WRK_RATE") or "0")
  if rate > 0 then interval = 1000 / rate end
end

function request()
  i = i + 1
  if i > n then i = 1 end -- wrapped: the server counts these as duplicates
  return reqs[i]
end

-- One slot per request, `interval` apart, for all connections of the thread:
-- a connection waits for the next free slot, so the total rate is the target.
function delay()
  if interval == 0 then return 0 end
  local t = now_ms()
  slot = math.max(slot + interval, t)
  return slot - t
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"socket_errors":%d,"status_errors":%d,' ..
    '"p50_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"#;

/// Installs Debian's `wrk` when it is missing.
pub fn ensure_installed() {
    if Command::new("wrk").arg("-v").output().is_ok() {
        return;
    }
    eprintln!("wrk is missing: apt-get install wrk");
    let ok = |c: &mut Command| c.status().map(|s| s.success()).unwrap_or(false);
    if !ok(Command::new("apt-get").args(["install", "-y", "-q", "wrk"])) {
        assert!(ok(Command::new("apt-get").args(["update", "-q"])));
        assert!(
            ok(Command::new("apt-get").args(["install", "-y", "-q", "wrk"])),
            "could not install wrk"
        );
    }
}

/// A request file and the script that replays it.
pub struct Requests {
    dir: tempfile::TempDir,
}

impl Requests {
    /// `count` unique requests for `POST {path}` on `host`, signed now with
    /// `secret` (Standard Webhooks); event `n` is `body(n)`.
    pub fn signed(
        host: &str,
        path: &str,
        secret: &SecretString,
        count: usize,
        body: impl Fn(usize) -> String,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut out =
            std::io::BufWriter::new(std::fs::File::create(dir.path().join("requests")).unwrap());
        let run = uuid::Uuid::new_v4().simple().to_string();
        let ts = chrono::Utc::now().timestamp();
        for n in 0..count {
            let body = body(n);
            let id = format!("wrk-{run}-{n}");
            let sig = leadbridge::webhook::sign_standard(secret, &id, ts, body.as_bytes());
            let req = format!(
                "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
                 webhook-id: {id}\r\nwebhook-timestamp: {ts}\r\nwebhook-signature: {sig}\r\n\
                 Content-Length: {}\r\n\r\n{body}",
                body.len()
            );
            writeln!(out, "{}", req.len()).unwrap();
            out.write_all(req.as_bytes()).unwrap();
        }
        out.flush().unwrap();
        std::fs::write(dir.path().join("replay.lua"), SCRIPT).unwrap();
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// What one wrk run measured.
#[derive(Debug, Clone)]
pub struct Run {
    pub requests: u64,
    pub secs: f64,
    pub socket_errors: u64,
    /// Answers other than 2xx/3xx.
    pub status_errors: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// CPU seconds (user + system) the server spent during the run.
    pub server_cpu: f64,
    /// CPU seconds wrk spent.
    pub wrk_cpu: f64,
    /// Seconds the server's threads spent on a CPU and waiting for one, by
    /// thread name.
    pub threads: BTreeMap<String, Times>,
}

impl Run {
    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.secs
    }
    /// Server CPU microseconds per request.
    pub fn cpu_us(&self) -> f64 {
        self.server_cpu * 1e6 / self.requests.max(1) as f64
    }
}

/// CPU seconds (user + system, all threads) of process `pid` so far.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    stat_cpu(&stat).1
}

/// Time of each thread of process `pid` so far, summed by thread name (its
/// actix workers share one): on a CPU, and waiting on a run queue (ready to
/// run while another thread had the CPU), from `/proc/…/schedstat`.
pub fn thread_times(pid: u32) -> BTreeMap<String, Times> {
    let mut by_name = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return by_name;
    };
    for task in tasks.flatten() {
        // A thread may end between the listing and the reads.
        let (Ok(comm), Ok(sched)) = (
            std::fs::read_to_string(task.path().join("comm")),
            std::fs::read_to_string(task.path().join("schedstat")),
        ) else {
            continue;
        };
        let mut ns = sched
            .split_whitespace()
            .map(|v| v.parse::<f64>().unwrap_or(0.0) / 1e9);
        let t: &mut Times = by_name.entry(comm.trim().to_string()).or_default();
        t.cpu += ns.next().unwrap_or(0.0);
        t.waiting += ns.next().unwrap_or(0.0);
    }
    by_name
}

/// Seconds a thread spent on a CPU and ready but waiting for one.
#[derive(Debug, Clone, Copy, Default)]
pub struct Times {
    pub cpu: f64,
    pub waiting: f64,
}

/// The command name and CPU seconds (user + system) in a `/proc/…/stat` line.
fn stat_cpu(stat: &str) -> (&str, f64) {
    // The command (which may hold spaces) is in parentheses.
    let open = stat.find('(').unwrap();
    let close = stat.rfind(')').unwrap();
    let f: Vec<&str> = stat[close + 2..].split(' ').collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    let secs = ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (&stat[open + 1..close], secs)
}

/// Runs wrk (1 thread, `connections` connections) at `url` for `duration`,
/// as fast as answers come or paced to `rate` per second; on CPU `cpu` when
/// given (`taskset`). `server` is the pid whose CPU time is measured.
pub fn run(
    requests: &Requests,
    url: &str,
    connections: usize,
    duration: Duration,
    rate: Option<f64>,
    cpu: Option<&str>,
    server: u32,
) -> Run {
    let mut cmd = match cpu {
        Some(cpu) => {
            let mut c = Command::new("taskset");
            c.args(["-c", cpu, "wrk"]);
            c
        }
        None => Command::new("wrk"),
    };
    cmd.args(["-t1", &format!("-c{connections}")])
        .arg(format!("-d{}s", duration.as_secs()))
        .args(["--timeout", "10s", "-s"])
        .arg(requests.path("replay.lua"))
        .arg(url)
        .env("WRK_REQUESTS", requests.path("requests"))
        .stdout(std::process::Stdio::piped());
    match rate {
        Some(r) => cmd.env("WRK_RATE", format!("{r:.0}")),
        None => cmd.env_remove("WRK_RATE"),
    };
    let before = cpu_seconds(server);
    let threads_before = thread_times(server);
    let child = cmd.spawn().expect("wrk runs");
    let (stdout, wrk_cpu) = wait_with_rusage(child);
    let server_cpu = cpu_seconds(server) - before;
    let mut threads = thread_times(server);
    for (name, t) in &mut threads {
        let before = threads_before.get(name).copied().unwrap_or_default();
        t.cpu -= before.cpu;
        t.waiting -= before.waiting;
    }
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("WRK_JSON "))
        .unwrap_or_else(|| panic!("wrk printed no result:\n{stdout}"));
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    let n = |k: &str| v[k].as_u64().unwrap();
    Run {
        requests: n("requests"),
        secs: n("duration_us") as f64 / 1e6,
        socket_errors: n("socket_errors"),
        status_errors: n("status_errors"),
        p50_ms: n("p50_us") as f64 / 1000.0,
        p99_ms: n("p99_us") as f64 / 1000.0,
        server_cpu,
        wrk_cpu,
        threads,
    }
}

/// Waits for `child`, returning its stdout and the CPU seconds it used.
fn wait_with_rusage(mut child: std::process::Child) -> (String, f64) {
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut stdout).unwrap();
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    let got = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(got, pid, "wait4 on wrk");
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (stdout, secs(usage.ru_utime) + secs(usage.ru_stime))
}

/// A command on CPU `cpu` (`taskset`) when given.
pub fn pinned(program: &Path, cpu: Option<&str>) -> Command {
    match cpu {
        Some(cpu) => {
            let mut c = Command::new("taskset");
            c.args(["-c", cpu]).arg(program);
            c
        }
        None => Command::new(program),
    }
}
