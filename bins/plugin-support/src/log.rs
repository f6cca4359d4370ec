//! A minimal logger for the `log` facade: one line per record, to stderr or to a file; never
//! stdout (stdout carries the CNI result).
//!
//! Line format: `2026-11-26T11:51:44.212Z INFO spiderpool[4242] ADD c1 eth0: message`, the part
//! after the pid being [`LogConfig::prefix`]; or, with [`init_with_format`] and
//! [`Format::Json`] (the long-running binaries' `--log-format json`), one JSON object per line:
//! `{"ts":"2026-11-26T11:51:44.212Z","level":"info","logger":"spiderpool-agent","pid":4242,"msg":"..."}`
//! (plus `"context"` holding the prefix when there is one).
//!
//! Files are opened in append mode and every line is one `write`, so the many plugin processes
//! of a busy node can share one file without interleaving inside lines. Rotation is checked once,
//! when the logger starts (a plugin process lives for milliseconds): a file at or above
//! `max_size_mb` is renamed to `<file>.<UTC time>-<pid>`; then backups older than
//! `max_age_days` (when not 0) are removed, and only the newest `max_count` (when not 0) are
//! kept. Only regular files whose names match that backup pattern exactly are ever removed.
//!
//! The path comes from a network configuration, which a namespaced NetworkAttachmentDefinition
//! can set, and the plugins run as root: [`vet_path`] refuses paths this logger would not
//! create (relative, inside system directories, shared-library names, an existing file that is
//! not a plain regular file), and [`init`] never opens a refused path.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use log::LevelFilter;
use log::{Log, Metadata, Record};

/// Where and how much to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// The most verbose level written.
    pub level: LevelFilter,
    /// The log file; `None` means stderr.
    pub file: Option<PathBuf>,
    /// Rotate at this size in MiB (0: 100 MiB, as upstream).
    pub max_size_mb: u64,
    /// Remove backups older than this many days (0: never).
    pub max_age_days: u64,
    /// Keep at most this many backups (0: no limit).
    pub max_count: u64,
    /// The program name in every line, e.g. `spiderpool`.
    pub program: String,
    /// Text after the pid in every line, e.g. `ADD c1 eth0`.
    pub prefix: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: LevelFilter::Info,
            file: None,
            max_size_mb: 0,
            max_age_days: 0,
            max_count: 0,
            program: String::new(),
            prefix: String::new(),
        }
    }
}

/// Where the logger ended up writing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// The configured file.
    File(PathBuf),
    /// stderr, by choice.
    Stderr,
    /// stderr because the file could not be opened (the reason is given).
    StderrFallback(String),
    /// A logger was already installed in this process; nothing changed.
    AlreadySet,
}

/// Parses a level name, case-insensitive: `debug`, `info`, `warn`/`warning`, `error`, and
/// upstream's `fatal` and `panic` (both as `error`), plus `trace` and `off`. An empty name is
/// `default`.
pub fn parse_level(name: &str, default: LevelFilter) -> Result<LevelFilter, String> {
    Ok(match name.trim().to_ascii_lowercase().as_str() {
        "" => default,
        "trace" => LevelFilter::Trace,
        "debug" => LevelFilter::Debug,
        "info" => LevelFilter::Info,
        "warn" | "warning" => LevelFilter::Warn,
        "error" | "fatal" | "panic" => LevelFilter::Error,
        "off" => LevelFilter::Off,
        other => {
            return Err(format!(
                "unknown log level {other:?} (debug, info, warn, error, fatal, panic)"
            ));
        }
    })
}

/// Directories a log file is never written in (nor created in): the system's programs,
/// libraries and configuration, and the kernel's pseudo file systems.
pub const SYSTEM_DIRS: [&str; 12] = [
    "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/sbin",
    "/sys", "/usr",
];

/// Why [`vet_path`] refuses a log file path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathRefused {
    /// Relative paths depend on the runtime's working directory.
    #[error("log file {0:?} is not an absolute path")]
    NotAbsolute(PathBuf),
    /// `..` makes the checks below meaningless.
    #[error("log file {0:?} has a \"..\" component")]
    ParentDir(PathBuf),
    /// The path has no file name (`/`).
    #[error("log file {0:?} has no file name")]
    NoFileName(PathBuf),
    /// Inside one of [`SYSTEM_DIRS`] (also after resolving symbolic links of the directory).
    #[error("log file {path:?} is inside the system directory {dir}")]
    SystemDir {
        /// The path as configured.
        path: PathBuf,
        /// The system directory it is in.
        dir: &'static str,
    },
    /// A name with a `so` part (`libfoo.so`, `libc.so.6`): rotation would rename a library.
    #[error("log file {0:?} is named like a shared library")]
    SharedLibrary(PathBuf),
    /// An existing symbolic link, directory, device, FIFO or socket.
    #[error("log file {path:?} exists and is not a regular file but a {kind}")]
    NotRegular {
        /// The path as configured.
        path: PathBuf,
        /// What it is.
        kind: &'static str,
    },
    /// An existing file with other names (a hard link to a file elsewhere).
    #[error("log file {path:?} has {links} hard links")]
    HardLinked {
        /// The path as configured.
        path: PathBuf,
        /// Its link count.
        links: u64,
    },
}

/// Checks that `path` is one this logger would create: absolute, without `..`, outside
/// [`SYSTEM_DIRS`] (lexically and once the existing part of its directory is resolved), not
/// named like a shared library, and, if it exists, a regular file with a single link (not a
/// symbolic link). Plugins call it while parsing the configuration; [`init`] calls it again.
pub fn vet_path(path: &Path) -> Result<(), PathRefused> {
    let owned = || path.to_path_buf();
    if !path.is_absolute() {
        return Err(PathRefused::NotAbsolute(owned()));
    }
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(PathRefused::ParentDir(owned()));
    }
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(PathRefused::NoFileName(owned()));
    };
    if let Some(dir) = system_dir(path).or_else(|| resolved(dir).and_then(|d| system_dir(&d))) {
        return Err(PathRefused::SystemDir { path: owned(), dir });
    }
    if name
        .to_string_lossy()
        .split('.')
        .skip(1)
        .any(|part| part == "so")
    {
        return Err(PathRefused::SharedLibrary(owned()));
    }
    let Ok(meta) = fs::symlink_metadata(path) else {
        return Ok(()); // does not exist (yet): it will be created as a regular file
    };
    let kind = meta.file_type();
    if !kind.is_file() {
        let kind = if kind.is_symlink() {
            "symbolic link"
        } else if kind.is_dir() {
            "directory"
        } else {
            "special file"
        };
        return Err(PathRefused::NotRegular {
            path: owned(),
            kind,
        });
    }
    if meta.nlink() > 1 {
        return Err(PathRefused::HardLinked {
            path: owned(),
            links: meta.nlink(),
        });
    }
    Ok(())
}

/// The system directory `path` is in, if any (component-wise: `/usrx` is not `/usr`).
fn system_dir(path: &Path) -> Option<&'static str> {
    SYSTEM_DIRS.into_iter().find(|d| path.starts_with(d))
}

/// `dir` with symbolic links resolved, from its deepest existing ancestor.
fn resolved(dir: &Path) -> Option<PathBuf> {
    let existing = dir.ancestors().find(|a| a.exists())?;
    let rest = dir.strip_prefix(existing).ok()?;
    Some(fs::canonicalize(existing).ok()?.join(rest))
}

/// Installs the process logger. Never fails: a file that cannot be opened, or that
/// [`vet_path`] refuses, falls back to stderr (and says so in the returned [`Destination`] and
/// in a first warning line).
pub fn init(config: &LogConfig) -> Destination {
    init_with_format(config, Format::Text)
}

/// How each line is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// `<time> <LEVEL> <program>[<pid>] <prefix>: <message>`.
    #[default]
    Text,
    /// One JSON object per line (`ts`, `level`, `logger`, `pid`, `context`, `msg`).
    Json,
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(Format::Text),
            "json" => Ok(Format::Json),
            other => Err(format!("unknown log format {other:?} (text, json)")),
        }
    }
}

/// [`init`] with the line format chosen.
pub fn init_with_format(config: &LogConfig, format: Format) -> Destination {
    let (sink, dest) = match &config.file {
        None => (Sink::Stderr, Destination::Stderr),
        Some(path) => match open(path, config) {
            Ok(file) => (Sink::File(file), Destination::File(path.clone())),
            Err(reason) => (
                Sink::Stderr,
                Destination::StderrFallback(format!("{}: {reason}", path.display())),
            ),
        },
    };
    let logger = Logger {
        format,
        program: config.program.clone(),
        level: config.level,
        head: format!("{}[{}]", config.program, std::process::id()),
        prefix: config.prefix.clone(),
        sink: Mutex::new(sink),
    };
    if log::set_boxed_logger(Box::new(logger)).is_err() {
        return Destination::AlreadySet;
    }
    log::set_max_level(config.level);
    if let Destination::StderrFallback(reason) = &dest {
        log::warn!("cannot open the log file, logging to stderr: {reason}");
    }
    dest
}

enum Sink {
    File(File),
    Stderr,
}

struct Logger {
    format: Format,
    program: String,
    level: LevelFilter,
    head: String,
    prefix: String,
    sink: Mutex<Sink>,
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= self.level
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = match self.format {
            Format::Text => {
                let sep = if self.prefix.is_empty() { "" } else { " " };
                format!(
                    "{} {} {}{sep}{}: {}\n",
                    rfc3339_millis(SystemTime::now()),
                    record.level(),
                    self.head,
                    self.prefix,
                    record.args()
                )
            }
            Format::Json => self.json_line(record),
        };
        // A poisoned lock only means another thread panicked mid-write; keep logging.
        let mut sink = match self.sink.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        // Logging must never fail the plugin: write errors are dropped.
        let _ = match &mut *sink {
            Sink::File(f) => f.write_all(line.as_bytes()),
            Sink::Stderr => std::io::stderr().write_all(line.as_bytes()),
        };
    }

    fn flush(&self) {}
}

impl Logger {
    fn json_line(&self, record: &Record<'_>) -> String {
        let mut obj = serde_json::Map::new();
        obj.insert("ts".into(), rfc3339_millis(SystemTime::now()).into());
        obj.insert(
            "level".into(),
            record.level().as_str().to_ascii_lowercase().into(),
        );
        obj.insert("logger".into(), self.program.clone().into());
        obj.insert("pid".into(), std::process::id().into());
        if !self.prefix.is_empty() {
            obj.insert("context".into(), self.prefix.clone().into());
        }
        obj.insert("msg".into(), record.args().to_string().into());
        let mut line = serde_json::Value::Object(obj).to_string();
        line.push('\n');
        line
    }
}

fn open(path: &Path, config: &LogConfig) -> Result<File, String> {
    vet_path(path).map_err(|e| e.to_string())?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    }
    let max = if config.max_size_mb == 0 {
        100
    } else {
        config.max_size_mb
    };
    // Rotation is best effort: a failure (a concurrent plugin rotated first) is not an error.
    if fs::metadata(path).is_ok_and(|m| m.len() >= max.saturating_mul(1024 * 1024)) {
        let backup = backup_name(path, SystemTime::now());
        let _ = fs::rename(path, backup);
    }
    prune(
        path,
        config.max_age_days,
        config.max_count,
        SystemTime::now(),
    );
    // No following a symbolic link put there after the check.
    OpenOptions::new()
        .create(true)
        .append(true)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(path)
        .map_err(|e| e.to_string())
}

/// `<path>.<YYYYMMDDTHHMMSS.mmmZ>-<pid>`: sorts by time; the pid keeps two plugins rotating in
/// the same millisecond from overwriting each other's backup.
fn backup_name(path: &Path, now: SystemTime) -> PathBuf {
    let stamp: String = rfc3339_millis(now)
        .chars()
        .filter(|c| !matches!(c, '-' | ':'))
        .collect();
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{stamp}-{}", std::process::id()));
    PathBuf::from(name)
}

/// Removes backups of `path` older than `max_age_days`, then all but the newest `max_count`.
fn prune(path: &Path, max_age_days: u64, max_count: u64, now: SystemTime) {
    if max_age_days == 0 && max_count == 0 {
        return;
    }
    let (Some(dir), Some(base)) = (path.parent(), path.file_name()) else {
        return;
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let mut prefix = base.to_os_string();
    prefix.push(".");
    let prefix = prefix.to_string_lossy().into_owned();
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut backups: Vec<(String, PathBuf, SystemTime)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            // Only our own backups: regular files named exactly as `backup_name` names them.
            is_backup_suffix(name.strip_prefix(&prefix)?).then_some(())?;
            e.file_type().ok()?.is_file().then_some(())?;
            let mtime = e.metadata().ok()?.modified().ok()?;
            Some((name, e.path(), mtime))
        })
        .collect();
    // Newest first (the names sort by time).
    backups.sort_by(|a, b| b.0.cmp(&a.0));
    let max_age = Duration::from_secs(max_age_days.saturating_mul(86_400));
    for (i, (_, p, mtime)) in backups.iter().enumerate() {
        let too_old = max_age_days > 0 && now.duration_since(*mtime).is_ok_and(|age| age > max_age);
        let too_many = max_count > 0 && i as u64 >= max_count;
        if too_old || too_many {
            let _ = fs::remove_file(p);
        }
    }
}

/// Whether `rest` is what [`backup_name`] appends after `<file>.`: `YYYYMMDDTHHMMSS.mmmZ-<pid>`
/// (8 digits, `T`, 6 digits, `.`, 3 digits, `Z`, `-`, 1 to 10 digits), and nothing else.
fn is_backup_suffix(rest: &str) -> bool {
    const SHAPE: &[u8; 21] = b"ddddddddTdddddd.dddZ-";
    let (stamp, pid) = rest.as_bytes().split_at(SHAPE.len().min(rest.len()));
    let fits = |(b, want): (&u8, &u8)| match want {
        b'd' => b.is_ascii_digit(),
        other => b == other,
    };
    stamp.len() == SHAPE.len()
        && stamp.iter().zip(SHAPE).all(fits)
        && (1..=10).contains(&pid.len())
        && pid.iter().all(u8::is_ascii_digit)
}

/// `2026-11-26T11:51:44.212Z`.
pub fn rfc3339_millis(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, day) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (the well-known
/// era-based conversion; valid for every date after 1970).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse_like_upstream() {
        let d = LevelFilter::Info;
        assert_eq!(parse_level("DEBUG", d).unwrap(), LevelFilter::Debug);
        assert_eq!(parse_level("", d).unwrap(), LevelFilter::Info);
        assert_eq!(parse_level("fatal", d).unwrap(), LevelFilter::Error);
        assert_eq!(parse_level("Panic", d).unwrap(), LevelFilter::Error);
        assert_eq!(parse_level("warning", d).unwrap(), LevelFilter::Warn);
        assert!(parse_level("loud", d).unwrap_err().contains("\"loud\""));
    }

    #[test]
    fn json_lines_are_one_object_each() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("json.log");
        let logger = Logger {
            format: Format::Json,
            program: "spiderpool-controller".to_owned(),
            level: LevelFilter::Info,
            head: String::new(),
            prefix: "ADD c1".to_owned(),
            sink: Mutex::new(Sink::File(File::create(&path).unwrap())),
        };
        for (level, msg) in [
            (log::Level::Info, "a \"quoted\"\nline"),
            (log::Level::Debug, "hidden"),
        ] {
            logger.log(
                &Record::builder()
                    .level(level)
                    .args(format_args!("{msg}"))
                    .build(),
            );
        }
        let text = fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "{text}");
        let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(v["level"], "info");
        assert_eq!(v["logger"], "spiderpool-controller");
        assert_eq!(v["context"], "ADD c1");
        assert_eq!(v["msg"], "a \"quoted\"\nline");
        assert_eq!(v["pid"], std::process::id());
        assert!(v["ts"].as_str().unwrap().ends_with('Z'));
        assert_eq!("JSON".parse::<Format>().unwrap(), Format::Json);
        assert!("xml".parse::<Format>().unwrap_err().contains("xml"));
    }

    #[test]
    fn timestamps_are_utc_rfc3339() {
        assert_eq!(rfc3339_millis(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_795_693_904_212);
        assert_eq!(rfc3339_millis(t), "2026-11-26T11:51:44.212Z");
        // A leap day.
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339_millis(t), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn rotation_renames_big_files_and_prunes_backups() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/spiderpool.log");
        let cfg = LogConfig {
            max_size_mb: 1,
            max_count: 2,
            ..LogConfig::default()
        };
        // Creates the directory and an empty file.
        drop(open(&path, &cfg).unwrap());
        assert!(path.exists());
        let sub = dir.path().join("sub");
        for stamp in [
            "20200101T000000.000Z-1",
            "20210101T000000.000Z-1",
            "20220101T000000.000Z-1",
        ] {
            fs::write(sub.join(format!("spiderpool.log.{stamp}")), b"old").unwrap();
        }
        fs::write(sub.join("spiderpool.log.keepme"), b"not ours").unwrap();
        fs::write(&path, vec![b'x'; 1024 * 1024]).unwrap();
        let mut f = open(&path, &cfg).unwrap();
        f.write_all(b"new\n").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new\n");
        let mut names: Vec<String> = fs::read_dir(&sub)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        // The fresh backup (this year's stamp) and the newest old one survive; "keepme" is
        // not a backup of ours.
        assert_eq!(names.len(), 4, "{names:?}");
        assert!(names.contains(&"spiderpool.log.20220101T000000.000Z-1".to_owned()));
        assert!(names.contains(&"spiderpool.log.keepme".to_owned()));
        assert!(!names.contains(&"spiderpool.log.20210101T000000.000Z-1".to_owned()));
    }

    /// Backdates `path` by `days` days.
    fn age(path: &Path, days: u64) {
        let f = File::options().write(true).open(path).unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(days * 86_400))
            .unwrap();
    }

    #[test]
    fn prune_deletes_only_names_of_our_own_backup_pattern() {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("libfoo.so");
        let ours = dir.path().join("app.log");
        let mut keep = vec![
            dir.path().join("libfoo.so.6"),
            dir.path().join("libfoo.so.6.0.1"),
        ];
        // Near misses of our pattern: logrotate's archives, a truncated stamp, a suffix.
        for name in [
            "app.log.1",
            "app.log.20240101",
            "app.log.20240101.gz",
            "app.log.20200101T000000.000Z",
            "app.log.20200101T000000.000Z-12.gz",
            "app.log.20200101T000000.000Z-",
            "app.log.2020010xT000000.000Z-1",
        ] {
            keep.push(dir.path().join(name));
        }
        let gone = dir.path().join("app.log.20200101T000000.000Z-4242");
        for f in keep.iter().chain([&gone]) {
            fs::write(f, b"x").unwrap();
            age(f, 30);
        }
        let now = SystemTime::now();
        prune(&lib, 1, 0, now);
        prune(&ours, 1, 0, now);
        for f in &keep {
            assert!(f.exists(), "{} was deleted", f.display());
        }
        assert!(!gone.exists(), "our own old backup is pruned");
    }

    #[test]
    fn backup_suffix_is_exact() {
        assert!(is_backup_suffix("20200101T000000.000Z-1"));
        assert!(is_backup_suffix("20200101T000000.000Z-4294967295"));
        for bad in [
            "",
            "6",
            "20200101T000000.000Z-",
            "20200101T000000.000Z-12345678901",
            "20200101T000000.000Z-1.gz",
            "20200101T000000.000Z1",
            "2020010éT000000.000Z-1",
        ] {
            assert!(!is_backup_suffix(bad), "{bad:?}");
        }
    }

    #[test]
    fn paths_we_would_not_create_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let refused = |p: &Path| vet_path(p).unwrap_err().to_string();
        assert!(refused(Path::new("spiderpool.log")).contains("not an absolute path"));
        assert!(refused(&d.join("../x.log")).contains("\"..\""));
        for p in [
            "/usr/lib/x86_64-linux-gnu/libc.so",
            "/lib/x.log",
            "/etc/cni/x.log",
            "/proc/self/x",
            "/sys/x",
            "/dev/x",
            "/sbin/x",
            "/bin/x",
        ] {
            assert!(refused(Path::new(p)).contains("system directory"), "{p}");
        }
        // A symbolic link to a system directory is resolved.
        std::os::unix::fs::symlink("/usr/lib", d.join("lib")).unwrap();
        assert!(refused(&d.join("lib/new/x.log")).contains("system directory /usr"));
        // Shared-library names, even outside system directories.
        for name in ["libfoo.so", "libfoo.so.6", "ld-linux.so.2"] {
            assert!(refused(&d.join(name)).contains("shared library"), "{name}");
        }
        // Existing things that are not a plain regular file.
        fs::write(d.join("target"), b"").unwrap();
        std::os::unix::fs::symlink(d.join("target"), d.join("link.log")).unwrap();
        assert!(refused(&d.join("link.log")).contains("symbolic link"));
        fs::create_dir(d.join("dir.log")).unwrap();
        assert!(refused(&d.join("dir.log")).contains("directory"));
        fs::hard_link(d.join("target"), d.join("hard.log")).unwrap();
        assert!(refused(&d.join("hard.log")).contains("2 hard links"));
        assert!(refused(Path::new("/")).contains("no file name"));
        // What the plugins write by default, and a fresh file anywhere else, are fine.
        vet_path(Path::new("/var/log/spidernet/spiderpool.log")).unwrap();
        vet_path(&d.join("sub/spiderpool.log")).unwrap();
        vet_path(&d.join("usr/x.log")).unwrap();
    }

    #[test]
    fn a_library_path_is_never_opened_rotated_or_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("libfoo.so");
        let so6 = dir.path().join("libfoo.so.6");
        fs::write(&lib, vec![b'x'; 2 * 1024 * 1024]).unwrap();
        fs::write(&so6, b"ELF").unwrap();
        age(&so6, 30);
        let cfg = LogConfig {
            max_size_mb: 1,
            max_age_days: 1,
            max_count: 1,
            ..LogConfig::default()
        };
        let err = open(&lib, &cfg).unwrap_err();
        assert!(err.contains("shared library"), "{err}");
        assert_eq!(fs::read(&so6).unwrap(), b"ELF");
        assert_eq!(fs::metadata(&lib).unwrap().len(), 2 * 1024 * 1024);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn unopenable_file_falls_back_to_stderr() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        fs::write(&blocker, b"").unwrap();
        // A path below a regular file cannot be created.
        let err = open(&blocker.join("x.log"), &LogConfig::default()).unwrap_err();
        assert!(!err.is_empty());
    }
}
