//! A minimal logger for the `log` facade: one line per record, to stderr or to a file; never
//! stdout (stdout carries the CNI result).
//!
//! Line format: `2026-11-26T11:51:44.212Z INFO spiderpool[4242] ADD c1 eth0: message`, the part
//! after the pid being [`LogConfig::prefix`].
//!
//! Files are opened in append mode and every line is one `write`, so the many plugin processes
//! of a busy node can share one file without interleaving inside lines. Rotation is checked once,
//! when the logger starts (a plugin process lives for milliseconds): a file at or above
//! `max_size_mb` is renamed to `<file>.<UTC time>-<pid>`; then backups older than
//! `max_age_days` (when not 0) are removed, and only the newest `max_count` (when not 0) are
//! kept.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
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

/// Installs the process logger. Never fails: a file that cannot be opened falls back to
/// stderr (and says so in the returned [`Destination`] and in a first warning line).
pub fn init(config: &LogConfig) -> Destination {
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
        let sep = if self.prefix.is_empty() { "" } else { " " };
        let line = format!(
            "{} {} {}{sep}{}: {}\n",
            rfc3339_millis(SystemTime::now()),
            record.level(),
            self.head,
            self.prefix,
            record.args()
        );
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

fn open(path: &Path, config: &LogConfig) -> Result<File, String> {
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
    OpenOptions::new()
        .create(true)
        .append(true)
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
            let rest = name.strip_prefix(&prefix)?;
            // Only our own backups: a digit-led time stamp.
            rest.starts_with(|c: char| c.is_ascii_digit())
                .then_some(())?;
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
#[allow(clippy::unwrap_used)]
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
