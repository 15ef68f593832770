//! `cni-test-plugin`: a scriptable CNI plugin used as a test double by the
//! integration tests. Tests put it in a temp dir (symlink or copy) under any
//! name and drive it through the network config it receives on stdin.
//!
//! # Protocol
//!
//! 1. It always reads all of stdin first (until EOF).
//! 2. Every invocation is logged: one JSON line is appended (`O_APPEND|O_CREAT`,
//!    the whole line in one `write()`) to `<argv[0]>.calls.jsonl` and, if the
//!    config has `testPlugin.log` (a path string), to that file too:
//!    `{"command": CNI_COMMAND or null, "argv": [..], "env": {all env vars},
//!    "stdin": "<stdin, lossy UTF-8>", "pid": N, "pgid": N, "ppid": N}`.
//! 3. `VERSION`: if `<argv[0]>.version.json` exists its contents are printed
//!    verbatim and the exit code is read from `<argv[0]>.version.exit` (else 0).
//!    Otherwise it prints `{"cniVersion": <stdin cniVersion, or "1.1.0">,
//!    "supportedVersions": ["0.1.0" .. "1.1.0"]}` and exits 0.
//! 4. Any other command: stdin must be a JSON object (else a CNI error with
//!    code 6 and exit 1). The action is `testPlugin.<COMMAND>`, else
//!    `testPlugin["*"]`, else empty. Its optional fields, applied in order:
//!    - `pidFile` (string): append `"<own pid>\n"` to that file.
//!    - `ignoreTerm` (bool): the plugin ignores SIGTERM.
//!    - `spawnChild` (object): re-exec itself as a grandchild in the same
//!      process group (`TEST_PLUGIN_CHILD=1`, `TEST_PLUGIN_CHILD_IGNORE_TERM`,
//!      `TEST_PLUGIN_CHILD_SLEEP_MS`, `TEST_PLUGIN_CHILD_PID_FILE`), which
//!      appends `"<its pid>\n"` to `pidFile` (required) and sleeps `sleepMs`
//!      (default 3600000) before exiting 0; with `ignoreTerm` (default false) it
//!      ignores SIGTERM. With `holdStdout` (default true) it inherits the
//!      plugin's stdout/stderr, else its stdio is /dev/null. The plugin waits
//!      until the child's pid is in the pid file, then goes on without
//!      waiting for the child.
//!    - `mark` (string): append `"start <pid>\n"` to that file now and
//!      `"end <pid>\n"` just before exiting (for ordering tests).
//!    - `touch` (string): create that file. `waitFor` (string): wait until
//!      that file exists (for rendezvous between concurrent plugins).
//!    - `sleepMs` (number): sleep that long. `hang` (bool): sleep forever.
//!    - `stderr` (string): written verbatim to stderr.
//!    - stdout, the first key present: `stdout` (string, verbatim), `result`
//!      (any JSON, compact), `error` (object: printed as `{"cniVersion":
//!      <stdin cniVersion>, "code", "msg", "details"}` omitting absent fields;
//!      the default exit code becomes 1). Else ADD prints the default result
//!      and other commands print nothing.
//!    - `exit` (number): the exit code (default 0, or 1 with `error`).
//!    - `failRate` (number in 0..=1): with that probability (drawn from the
//!      clock and pid), ignore the stdout fields above and fail instead with
//!      the CNI error `{"code": 11, "msg": "injected failure"}` and exit 1
//!      (for tests that inject random failures).
//! 5. Default ADD result, for V = the config's `cniVersion` (missing or "" is
//!    "0.1.0"): `prevResult` (or `{}`) with `"cniVersion": V`; for 0.1.0/0.2.0
//!    `"ip4": {"ip": "10.99.0.2/24"}` unless there is an `ip4`; for
//!    0.3.0/0.3.1/0.4.0 and >= 1.0.0 `{"name": <testPlugin.tag, else the config
//!    "type">, "sandbox": CNI_NETNS}` is appended to `interfaces`, and if `ips`
//!    is missing or empty it becomes `[{"address": "10.99.0.2/24",
//!    "interface": <that index>}]` (plus `"version": "4"` before 1.0.0).
//!
//! A malformed `testPlugin` field gives a CNI error with code 7 and exit 1.

use serde_json::{Map, Value, json};
use std::ffi::OsString;
use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SUPPORTED: [&str; 7] = [
    "0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0",
];

/// A CNI error to report on stdout.
struct Fail {
    code: u32,
    msg: String,
    details: Option<String>,
}

fn bad(msg: impl Into<String>) -> Fail {
    Fail {
        code: 7,
        msg: msg.into(),
        details: None,
    }
}

type R<T> = Result<T, Fail>;

fn ignore_sigterm() {
    // SAFETY: setting a signal disposition to SIG_IGN has no preconditions.
    unsafe { libc::signal(libc::SIGTERM, libc::SIG_IGN) };
}

/// Append `text` to `path` with a single `write()` on an `O_APPEND` descriptor.
fn append(path: &str, text: &str) -> std::io::Result<()> {
    let mut f = OpenOptions::new().append(true).create(true).open(path)?;
    match f.write(text.as_bytes()) {
        Ok(n) if n == text.len() => Ok(()),
        Ok(_) => Err(std::io::Error::other("short write")),
        Err(e) => Err(e),
    }
}

fn lossy(s: OsString) -> String {
    s.to_string_lossy().into_owned()
}

fn child_mode() -> ! {
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    if var("TEST_PLUGIN_CHILD_IGNORE_TERM") == "1" {
        ignore_sigterm();
    } else {
        // An ignored SIGTERM survives exec: restore the default explicitly.
        // SAFETY: as above.
        unsafe { libc::signal(libc::SIGTERM, libc::SIG_DFL) };
    }
    let pid = std::process::id();
    if append(&var("TEST_PLUGIN_CHILD_PID_FILE"), &format!("{pid}\n")).is_err() {
        std::process::exit(1);
    }
    let ms = var("TEST_PLUGIN_CHILD_SLEEP_MS")
        .parse()
        .unwrap_or(3_600_000);
    std::thread::sleep(Duration::from_millis(ms));
    std::process::exit(0)
}

fn log_call(argv: &[String], command: Option<&str>, stdin: &[u8], conf: Option<&Value>) {
    let env: Map<String, Value> = std::env::vars_os()
        .map(|(k, v)| (lossy(k), Value::String(lossy(v))))
        .collect();
    // SAFETY: these calls have no preconditions and cannot fail.
    let (pgid, ppid) = unsafe { (libc::getpgrp(), libc::getppid()) };
    let entry = json!({
        "command": command,
        "argv": argv,
        "env": env,
        "stdin": String::from_utf8_lossy(stdin),
        "pid": std::process::id(),
        "pgid": pgid,
        "ppid": ppid,
    });
    let line = format!("{entry}\n");
    let argv0 = argv.first().map(String::as_str).unwrap_or_default();
    let extra = conf.and_then(|c| c.pointer("/testPlugin/log")?.as_str());
    for path in std::iter::once(format!("{argv0}.calls.jsonl")).chain(extra.map(String::from)) {
        if let Err(e) = append(&path, &line) {
            eprintln!("cni-test-plugin: cannot log to {path}: {e}");
        }
    }
}

fn version(argv0: &str, conf: Option<&Value>, out: &mut String) -> i32 {
    if let Ok(text) = std::fs::read_to_string(format!("{argv0}.version.json")) {
        out.push_str(&text);
        return match std::fs::read_to_string(format!("{argv0}.version.exit")) {
            Ok(code) => code.trim().parse().unwrap_or(1),
            Err(_) => 0,
        };
    }
    let v = conf
        .and_then(|c| c.get("cniVersion")?.as_str())
        .filter(|v| !v.is_empty())
        .unwrap_or("1.1.0");
    out.push_str(&json!({"cniVersion": v, "supportedVersions": SUPPORTED}).to_string());
    0
}

fn field<'a, T>(
    obj: &'a Map<String, Value>,
    key: &str,
    what: &str,
    get: impl Fn(&'a Value) -> Option<T>,
) -> R<Option<T>> {
    match obj.get(key) {
        None => Ok(None),
        Some(v) => get(v)
            .map(Some)
            .ok_or_else(|| bad(format!("testPlugin: field `{key}` must be {what}"))),
    }
}

fn opt_str<'a>(obj: &'a Map<String, Value>, key: &str) -> R<Option<&'a str>> {
    field(obj, key, "a string", Value::as_str)
}

fn opt_bool(obj: &Map<String, Value>, key: &str) -> R<bool> {
    Ok(field(obj, key, "a boolean", Value::as_bool)?.unwrap_or(false))
}

fn opt_ms(obj: &Map<String, Value>, key: &str) -> R<Option<u64>> {
    field(obj, key, "a non-negative integer", Value::as_u64)
}

fn spawn_child(argv0: &str, spec: &Map<String, Value>) -> R<()> {
    let pid_file = opt_str(spec, "pidFile")?
        .ok_or_else(|| bad("testPlugin: spawnChild needs a `pidFile` string"))?;
    let ignore = opt_bool(spec, "ignoreTerm")?;
    let hold = field(spec, "holdStdout", "a boolean", Value::as_bool)?.unwrap_or(true);
    let sleep = opt_ms(spec, "sleepMs")?.unwrap_or(3_600_000);
    let (out, err) = if hold {
        (Stdio::inherit(), Stdio::inherit())
    } else {
        (Stdio::null(), Stdio::null())
    };
    let mut child = Command::new("/proc/self/exe")
        .arg0(argv0)
        .env("TEST_PLUGIN_CHILD", "1")
        .env(
            "TEST_PLUGIN_CHILD_IGNORE_TERM",
            u8::from(ignore).to_string(),
        )
        .env("TEST_PLUGIN_CHILD_SLEEP_MS", sleep.to_string())
        .env("TEST_PLUGIN_CHILD_PID_FILE", pid_file)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| bad(format!("testPlugin: spawnChild failed: {e}")))?;
    let want = child.id().to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(pid_file).unwrap_or_default();
        if text.lines().any(|l| l.trim() == want) {
            return Ok(());
        }
        if !matches!(child.try_wait(), Ok(None)) || Instant::now() > deadline {
            return Err(bad(format!(
                "testPlugin: spawned child never wrote {pid_file}"
            )));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The default ADD result (see the module docs, point 5).
fn default_result(conf: &Map<String, Value>, tp: &Map<String, Value>) -> R<Value> {
    let v = match conf.get("cniVersion") {
        None => "0.1.0",
        Some(v) => v
            .as_str()
            .ok_or_else(|| bad("cniVersion must be a string"))?,
    };
    let v = if v.is_empty() { "0.1.0" } else { v };
    let mut res = match conf.get("prevResult") {
        None => Map::new(),
        Some(Value::Object(p)) => p.clone(),
        Some(_) => return Err(bad("prevResult must be an object")),
    };
    res.insert("cniVersion".into(), v.into());
    let major: u64 = v
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    let pre1 = matches!(v, "0.3.0" | "0.3.1" | "0.4.0");
    if matches!(v, "0.1.0" | "0.2.0") {
        res.entry("ip4")
            .or_insert_with(|| json!({"ip": "10.99.0.2/24"}));
    } else if pre1 || major >= 1 {
        let name = match opt_str(tp, "tag")? {
            Some(tag) => Value::from(tag),
            None => conf.get("type").cloned().unwrap_or_else(|| "".into()),
        };
        let netns = std::env::var_os("CNI_NETNS").map(lossy).unwrap_or_default();
        let ifaces = res.entry("interfaces").or_insert_with(|| json!([]));
        let ifaces = ifaces
            .as_array_mut()
            .ok_or_else(|| bad("prevResult.interfaces must be an array"))?;
        ifaces.push(json!({"name": name, "sandbox": netns}));
        let index = ifaces.len() - 1;
        let no_ips = res
            .get("ips")
            .is_none_or(|ips| ips.as_array().is_some_and(Vec::is_empty));
        if no_ips {
            let mut ip = json!({"address": "10.99.0.2/24", "interface": index});
            if pre1 {
                ip["version"] = "4".into();
            }
            res.insert("ips".into(), json!([ip]));
        }
    }
    Ok(Value::Object(res))
}

/// Runs an action; returns the exit code, having put stdout's text in `out`.
fn run(argv0: &str, command: Option<&str>, conf: &Map<String, Value>, out: &mut String) -> R<i32> {
    let empty = Map::new();
    let tp = match conf.get("testPlugin") {
        None => &empty,
        Some(v) => v
            .as_object()
            .ok_or_else(|| bad("testPlugin must be an object"))?,
    };
    opt_str(tp, "log")?;
    let action = command
        .and_then(|c| tp.get(c))
        .or_else(|| tp.get("*"))
        .map(|a| {
            a.as_object()
                .ok_or_else(|| bad("testPlugin: an action must be an object"))
        })
        .transpose()?
        .unwrap_or(&empty);
    // Check every field before doing anything.
    let pid_file = opt_str(action, "pidFile")?;
    let ignore_term = opt_bool(action, "ignoreTerm")?;
    let spawn = field(action, "spawnChild", "an object", Value::as_object)?;
    let mark = opt_str(action, "mark")?;
    let touch = opt_str(action, "touch")?;
    let wait_for = opt_str(action, "waitFor")?;
    let sleep_ms = opt_ms(action, "sleepMs")?;
    let hang = opt_bool(action, "hang")?;
    let stderr = opt_str(action, "stderr")?;
    let stdout = opt_str(action, "stdout")?;
    let error = field(action, "error", "an object", Value::as_object)?;
    let as_i32 = |v: &Value| v.as_i64().and_then(|n| i32::try_from(n).ok());
    let exit = field(action, "exit", "an integer", as_i32)?;
    let fail_rate = field(action, "failRate", "a number", Value::as_f64)?;

    if let Some(path) = pid_file {
        append(path, &format!("{}\n", std::process::id()))
            .map_err(|e| bad(format!("testPlugin: cannot write pidFile {path}: {e}")))?;
    }
    if ignore_term {
        ignore_sigterm();
    }
    if let Some(spec) = spawn {
        spawn_child(argv0, spec)?;
    }
    let pid = std::process::id();
    if let Some(path) = mark {
        append(path, &format!("start {pid}\n"))
            .map_err(|e| bad(format!("testPlugin: cannot write mark {path}: {e}")))?;
    }
    if let Some(path) = touch {
        append(path, "").map_err(|e| bad(format!("testPlugin: cannot create {path}: {e}")))?;
    }
    if let Some(path) = wait_for {
        while !std::path::Path::new(path).exists() {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    if let Some(ms) = sleep_ms {
        std::thread::sleep(Duration::from_millis(ms));
    }
    if let Some(path) = mark {
        append(path, &format!("end {pid}\n"))
            .map_err(|e| bad(format!("testPlugin: cannot write mark {path}: {e}")))?;
    }
    if hang {
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
    if let Some(text) = stderr {
        let mut e = std::io::stderr().lock();
        let _ = e.write_all(text.as_bytes()).and_then(|()| e.flush());
    }
    let mut code = 0;
    if fail_rate.is_some_and(|p| draw() < p) {
        return Err(Fail {
            code: 11,
            msg: "injected failure".into(),
            details: None,
        });
    }
    if let Some(text) = stdout {
        out.push_str(text);
    } else if let Some(result) = action.get("result") {
        out.push_str(&result.to_string());
    } else if let Some(err) = error {
        let mut obj = Map::new();
        for key in ["cniVersion", "code", "msg", "details"] {
            let src = if key == "cniVersion" { conf } else { err };
            if let Some(v) = src.get(key) {
                obj.insert(key.into(), v.clone());
            }
        }
        out.push_str(&Value::Object(obj).to_string());
        code = 1;
    } else if command == Some("ADD") {
        out.push_str(&default_result(conf, tp)?.to_string());
    }
    Ok(exit.unwrap_or(code))
}

/// A number in `[0, 1)` from the clock and the pid (a splitmix64 step).
fn draw() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut z = nanos ^ (u64::from(std::process::id()) << 32);
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

fn main() {
    if std::env::var_os("TEST_PLUGIN_CHILD").is_some_and(|v| v == "1") {
        child_mode();
    }
    let argv: Vec<String> = std::env::args_os().map(lossy).collect();
    let argv0 = argv.first().cloned().unwrap_or_default();
    let mut stdin = Vec::new();
    let _ = std::io::stdin().lock().read_to_end(&mut stdin);
    let command = std::env::var_os("CNI_COMMAND").map(lossy);
    let parsed: Result<Value, _> = serde_json::from_slice(&stdin);
    log_call(&argv, command.as_deref(), &stdin, parsed.as_ref().ok());

    let mut out = String::new();
    let code = if command.as_deref() == Some("VERSION") {
        version(&argv0, parsed.as_ref().ok(), &mut out)
    } else {
        let decoding = |d: String| Fail {
            code: 6,
            msg: "decoding failure".into(),
            details: Some(d),
        };
        let result = match &parsed {
            Ok(Value::Object(conf)) => run(&argv0, command.as_deref(), conf, &mut out),
            Ok(_) => Err(decoding("network config is not a JSON object".into())),
            Err(e) => Err(decoding(e.to_string())),
        };
        result.unwrap_or_else(|f| {
            let mut err = json!({"code": f.code, "msg": f.msg});
            if let Some(v) = parsed.as_ref().ok().and_then(|c| c.get("cniVersion")) {
                err["cniVersion"] = v.clone();
            }
            if let Some(d) = f.details {
                err["details"] = d.into();
            }
            out = err.to_string();
            1
        })
    };
    let mut so = std::io::stdout().lock();
    let _ = so.write_all(out.as_bytes()).and_then(|()| so.flush());
    drop(so);
    std::process::exit(code)
}
