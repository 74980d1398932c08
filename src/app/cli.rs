//! What each `cemsd` subcommand does; `main.rs` only parses arguments.

use std::net::SocketAddr;
use std::path::Path;

use crate::config::profile::{self, ProfileSet};
use crate::config::{self, ConfigError, Loaded};
use crate::model::Timestamp;
pub use crate::ops::logging::LogFormat;
use crate::report;
use crate::store::{Query, RecordKind, Store, StoreOptions, Stored};

/// A failure at run time that may pass (a port taken, a peer away): a restart may help.
pub const EXIT_RUNTIME: u8 = 1;
/// Something the operator wrote or provides is wrong: the config, a profile, an argument, a
/// secret file that is missing or unreadable. A restart cannot fix it; the unit's
/// `RestartPreventExitStatus=` names it.
pub const EXIT_CONFIG: u8 = 2;
/// The store cannot be used: another cemsd holds it, or it is corrupt, read-only, not ours
/// to write or from a newer cemsd. A restart cannot fix it either; the unit names it too.
pub const EXIT_STORE: u8 = 3;

/// Why a command failed and which exit code says so (see the `EXIT_*` constants).
#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub exit_code: u8,
}

impl Failure {
    pub fn usage(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            exit_code: EXIT_CONFIG,
        }
    }

    pub fn runtime(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            exit_code: EXIT_RUNTIME,
        }
    }

    /// A store failure: [`EXIT_STORE`] when `needs_operator`, else a runtime one.
    pub fn store(message: impl Into<String>, needs_operator: bool) -> Self {
        Failure {
            message: message.into(),
            exit_code: if needs_operator {
                EXIT_STORE
            } else {
                EXIT_RUNTIME
            },
        }
    }
}

impl From<ConfigError> for Failure {
    fn from(err: ConfigError) -> Self {
        Failure::usage(err.to_string())
    }
}

/// Logs go to stderr: compact on a terminal, without our own timestamps under systemd
/// (journald adds them), JSON when asked for (see [`crate::ops::logging`]).
pub fn init_logging(format: Option<LogFormat>) {
    crate::ops::logging::init(format);
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failure::runtime(format!("cannot start the async runtime: {e}")))
}

pub fn run(config_path: &Path) -> Result<(), Failure> {
    let mut loaded = config::load(config_path)?;
    check_environment(&mut loaded)?;
    runtime()?.block_on(crate::app::daemon::run(loaded))
}

/// Raises the open-files limit as far as allowed, then checks the config against it and
/// against where the service finds its secrets; warnings join the config's own.
fn check_environment(loaded: &mut Loaded) -> Result<(), Failure> {
    let limit = crate::ops::open_files::raise_to_hard_limit();
    let env = config::environment::Environment::current(limit);
    let warnings = config::environment::check(loaded, &env)?;
    loaded.warnings.extend(warnings);
    if let Some(limit) = limit {
        tracing::debug!(limit, "open files");
    }
    Ok(())
}

pub fn check(config_path: &Path) -> Result<(), Failure> {
    let mut loaded = config::load(config_path)?;
    check_environment(&mut loaded)?;
    let Loaded {
        config, warnings, ..
    } = loaded;
    for warning in &warnings {
        eprintln!("warning: {warning}");
    }
    println!(
        "{}: ok ({} stacks, {} devices, {} simulators)",
        config_path.display(),
        config.stacks.len(),
        config.devices.len(),
        config.simulators.len()
    );
    Ok(())
}

fn shipped_profiles() -> Result<ProfileSet, Failure> {
    ProfileSet::shipped()
        .map_err(|e| Failure::runtime(format!("a shipped profile is invalid: {e}")))
}

pub fn profiles_list() -> Result<(), Failure> {
    let profiles = shipped_profiles()?;
    println!(
        "{:<28} {:<22} {:<26} {:>8}  channels",
        "NAME", "VENDOR", "MODEL", "VERIFIED"
    );
    for p in profiles.iter() {
        let channels: Vec<_> = p.channels.iter().map(|c| c.name.as_str()).collect();
        println!(
            "{:<28} {:<22} {:<26} {:>8}  {}",
            p.name,
            p.vendor,
            p.model,
            if p.verified { "yes" } else { "no" },
            channels.join(",")
        );
    }
    Ok(())
}

pub fn profiles_show(name: &str) -> Result<(), Failure> {
    let profiles = shipped_profiles()?;
    match profile::shipped_text(name) {
        Some(text) => {
            print!("{text}");
            Ok(())
        }
        None => Err(Failure::usage(format!(
            "no shipped profile {name:?}\n  help: one of: {}",
            profiles.names().collect::<Vec<_>>().join(", ")
        ))),
    }
}

pub fn simulate(
    profile_name: &str,
    listen: SocketAddr,
    scenario_path: Option<&Path>,
    seed: u64,
) -> Result<(), Failure> {
    let profiles = shipped_profiles()?;
    let Some(profile) = profiles.get(profile_name) else {
        return Err(Failure::usage(format!(
            "no shipped profile {profile_name:?}\n  help: one of: {}",
            profiles.names().collect::<Vec<_>>().join(", ")
        )));
    };
    let scenario = match scenario_path {
        Some(path) => crate::field::sim::Scenario::load(path, profile)
            .map_err(|e| Failure::usage(e.to_string()))?,
        None => crate::field::sim::Scenario::default(),
    };
    let profile = profile.clone();
    runtime()?.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| Failure::runtime(format!("cannot listen on {listen}: {e}")))?;
        tracing::info!(profile = %profile.name, %listen, "simulating");
        let sim = crate::field::sim::Simulator::new(profile, scenario, seed, crate::field::sim::WallClock::start());
        tokio::select! {
            served = crate::field::sim::serve(listener, sim) => served.map_err(|e| Failure::runtime(format!("simulator stopped: {e}"))),
            _ = tokio::signal::ctrl_c() => Ok(()),
        }
    })
}

/// What `cemsd report` is asked for.
pub struct ReportRequest<'a> {
    pub period: Result<report::ReportPeriod, String>,
    pub stack: Option<&'a str>,
    pub format: report::Format,
    pub output: Option<&'a Path>,
    pub lang: report::Lang,
}

/// The HJ 75 table of a day, month or year; for a day as text, the gaps, exceedances and
/// parameter changes below.
pub fn report(config_path: &Path, request: ReportRequest<'_>) -> Result<(), Failure> {
    let period = request.period.map_err(Failure::usage)?;
    if request.format == report::Format::Xlsx && request.output.is_none() {
        return Err(Failure::usage(
            "--format xlsx writes a workbook, not text\n  help: add --output FILE.xlsx",
        ));
    }
    let (loaded, store) = open_store(config_path)?;
    if let Some(stack) = request.stack {
        if !loaded.config.stacks.iter().any(|s| s.id == stack) {
            let known: Vec<&str> = loaded.config.stacks.iter().map(|s| s.id.as_str()).collect();
            return Err(Failure::usage(format!(
                "--stack {stack:?}: no such stack in {}\n  help: use one of: {}",
                loaded.path.display(),
                known.join(", ")
            )));
        }
    }
    let now = Timestamp::from_datetime(chrono::Utc::now());
    let read_failed = |e| Failure::runtime(format!("cannot read the store: {e}"));
    let built = report::build_table(&store, &loaded.config, period, request.stack, now)
        .map_err(read_failed)?;
    let lang = request.lang;
    let bytes: Vec<u8> = match request.format {
        report::Format::Text => {
            let mut text = report::render_text(&built, lang);
            if let report::ReportPeriod::Day(day) = period {
                let mut detail = report::build(&store, &loaded.config, day).map_err(read_failed)?;
                detail
                    .stacks
                    .retain(|s| request.stack.is_none_or(|id| s.stack == id));
                if built.empty.is_none() {
                    text.push_str(&report::render_events(&detail, lang));
                }
                // a day without values may still have had its parameters changed
                let offset = loaded.config.site.utc_offset;
                text.push_str(&report::render_changes(&detail.changes, offset, lang));
            }
            text.into_bytes()
        }
        report::Format::Csv => report::render_csv(&built, lang).into_bytes(),
        report::Format::Html => report::render_html(&built, lang).into_bytes(),
        report::Format::Json => serde_json::to_vec_pretty(&built)
            .map_err(|e| Failure::runtime(format!("cannot encode the report: {e}")))?,
        report::Format::Xlsx => report::render_xlsx(&built, lang)
            .map_err(|e| Failure::runtime(format!("cannot write the workbook: {e}")))?,
    };
    match request.output {
        Some(path) => std::fs::write(path, &bytes)
            .map_err(|e| Failure::runtime(format!("cannot write {}: {e}", path.display())))?,
        None => {
            use std::io::Write as _;
            std::io::stdout()
                .write_all(&bytes)
                .map_err(|e| Failure::runtime(format!("cannot write the report: {e}")))?;
        }
    }
    if let Some(note) = report::sheet::empty_note(&built, lang) {
        if request.output.is_some() {
            eprintln!("{note}");
        }
    }
    Ok(())
}

/// The config and its store, which must exist already.
pub(crate) fn open_store(config_path: &Path) -> Result<(Loaded, Store), Failure> {
    let loaded = config::load(config_path)?;
    let path = config::relative_to(&loaded.path, &loaded.config.store.path);
    if !path.exists() {
        return Err(Failure::runtime(format!(
            "{}: no store yet\n  help: start the daemon with `cemsd run --config {}` first",
            path.display(),
            config_path.display()
        )));
    }
    let store = Store::open(&path, StoreOptions::default())
        .map_err(|e| Failure::store(format!("{}: {e}", path.display()), e.needs_operator()))?;
    Ok((loaded, store))
}

/// Prints every packet in the input field by field, and every part of the input that is not
/// a packet with the byte where it goes wrong. Exits 1 when the input holds no packet that
/// decodes (empty input, noise, cut or damaged packets only).
pub fn hj212_decode(file: Option<&Path>) -> Result<(), Failure> {
    use crate::protocol::hj212::{DecodeErrorKind, Framer};
    use std::io::Read;
    let mut bytes = Vec::new();
    match file {
        Some(path) => {
            bytes = std::fs::read(path)
                .map_err(|e| Failure::usage(format!("{}: {e}", path.display())))?
        }
        None => {
            std::io::stdin()
                .read_to_end(&mut bytes)
                .map_err(|e| Failure::runtime(format!("cannot read stdin: {e}")))?;
        }
    }
    let mut framer = Framer::new().reporting_skipped();
    framer.push(&bytes);
    framer.finish();
    let (mut good, mut bad, mut skipped) = (0, 0, 0);
    let mut first_problem = None;
    while let Some(found) = framer.next_packet() {
        match found {
            Ok(frame) => {
                good += 1;
                println!(
                    "packet at byte {}:\n{}",
                    frame.offset,
                    crate::protocol::hj212::describe(&frame.packet)
                );
            }
            Err(failed) => {
                let label = match failed.error.kind {
                    DecodeErrorKind::NotAPacket { len } => {
                        skipped += len;
                        "not a packet"
                    }
                    _ => {
                        bad += 1;
                        "bad packet"
                    }
                };
                println!(
                    "{label}: {}\n{}\n",
                    failed.error,
                    failed.error.point_at(&bytes)
                );
                first_problem.get_or_insert_with(|| failed.error.to_string());
            }
        }
    }
    let skipped_note = match skipped {
        0 => String::new(),
        1 => ", 1 byte that is not a packet".to_string(),
        n => format!(", {n} bytes that are not packets"),
    };
    println!("{good} packets decoded, {bad} rejected{skipped_note}");
    if good > 0 {
        return Ok(());
    }
    Err(Failure::runtime(match first_problem {
        Some(problem) => format!("no packet could be decoded: {problem}"),
        None if bytes.is_empty() => "no packet could be decoded: the input is empty".to_string(),
        None => format!(
            "no packet could be decoded: the input is {} bytes of whitespace",
            bytes.len()
        ),
    }))
}

pub fn query(
    config_path: &Path,
    device: Option<String>,
    quantity: Option<String>,
    latest: bool,
    limit: usize,
) -> Result<(), Failure> {
    let quantity = quantity
        .map(|q| q.parse())
        .transpose()
        .map_err(Failure::usage)?;
    let (_, store) = open_store(config_path)?;
    let rows = if latest {
        store.latest()
    } else {
        store.query(&Query {
            kind: Some(RecordKind::Reading),
            device,
            quantity,
            limit: Some(limit),
            ..Query::default()
        })
    }
    .map_err(|e| Failure::runtime(format!("cannot read the store: {e}")))?;
    print_rows(&rows);
    Ok(())
}

fn print_rows(rows: &[Stored]) {
    println!(
        "{:>8}  {:<24}  {:<8} {:<8} {:<12} {:<10} {:<8} {:>12} {:>12} {:<6} FLAG",
        "SEQ",
        "TIME (UTC)",
        "KIND",
        "STACK",
        "DEVICE",
        "CHANNEL",
        "QUANTITY",
        "MEASURED",
        "CORRECTED",
        "UNIT"
    );
    let show = |v: Option<f64>| v.map(|v| format!("{v:.3}")).unwrap_or_else(|| "-".into());
    for Stored { seq, record: r } in rows {
        println!(
            "{:>8}  {:<24}  {:<8} {:<8} {:<12} {:<10} {:<8} {:>12} {:>12} {:<6} {}",
            seq,
            r.ts.to_string(),
            r.kind.as_str(),
            r.stack,
            r.device,
            r.channel,
            r.quantity.map(|q| q.name()).unwrap_or("-"),
            show(r.measured),
            show(r.corrected),
            r.unit.map(|u| u.symbol()).unwrap_or("-"),
            r.flags.primary()
        );
    }
}

/// How to read a serial log (see [`crate::field::capture::import`]).
#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    /// Forced format name; detected from the content when absent.
    pub format: Option<String>,
    /// Local date (YYYY-MM-DD) for logs that print the time of day only.
    pub date: Option<String>,
    /// Start time for logs without times: RFC 3339, or local `YYYY-MM-DDTHH:MM:SS`.
    pub start: Option<String>,
    /// Offset of the local times a log prints, e.g. `+08:00`.
    pub utc_offset: Option<String>,
}

/// Most skipped lines listed one by one; the rest are counted.
const SKIPPED_SHOWN: usize = 20;

fn read_log(
    path: &Path,
    options: &LogOptions,
    site_offset: Option<crate::model::time::UtcOffset>,
) -> Result<crate::field::capture::import::Imported, Failure> {
    use crate::field::capture::import::{detect, import, Format, ImportOptions};
    let bytes =
        std::fs::read(path).map_err(|e| Failure::usage(format!("{}: {e}", path.display())))?;
    let format = match &options.format {
        Some(name) => name.parse::<Format>().map_err(Failure::usage)?,
        None => detect(&bytes).ok_or_else(|| {
            Failure::usage(format!(
                "{}: cannot tell the log format\n  help: pass --format (one of {})",
                path.display(),
                Format::ALL.map(|f| f.name()).join(", ")
            ))
        })?,
    };
    let offset = match (&options.utc_offset, site_offset) {
        (Some(text), _) => text
            .parse::<crate::model::time::UtcOffset>()
            .map_err(|e| Failure::usage(format!("--utc-offset: {e}")))?,
        (None, Some(site)) => site,
        (None, None) if matches!(format, Format::Socat | Format::Sscom) => {
            return Err(Failure::usage(format!(
                "a {format} log prints local times\n  help: pass --utc-offset with the site's offset, e.g. +08:00"
            )))
        }
        (None, None) => crate::model::time::UtcOffset::UTC,
    };
    let date = options
        .date
        .as_deref()
        .map(|d| {
            chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").map_err(|e| {
                Failure::usage(format!(
                    "--date {d:?}: {e}\n  help: write the local date as YYYY-MM-DD"
                ))
            })
        })
        .transpose()?;
    let start_us = match (&options.start, format.is_untimed()) {
        (Some(text), _) => parse_start(text, offset)?,
        (None, true) => {
            return Err(Failure::usage(format!(
                "a {format} log has no times\n  help: pass --start with the time of its first request, e.g. 2026-01-01T08:00:00+08:00"
            )))
        }
        (None, false) => 0,
    };
    let import_options = ImportOptions {
        date,
        utc_offset: offset.to_chrono(),
        start_us,
    };
    let imported = import(&bytes, Some(format), &import_options)
        .map_err(|e| Failure::runtime(format!("{}: {e}", path.display())))?;
    for skipped in imported.skipped.iter().take(SKIPPED_SHOWN) {
        let place = if imported.format == Format::Raw {
            "byte"
        } else {
            "line"
        };
        eprintln!(
            "{}: {place} {}: skipped: {}",
            path.display(),
            skipped.line,
            skipped.reason
        );
    }
    if imported.skipped.len() > SKIPPED_SHOWN {
        eprintln!(
            "{}: … and {} more skipped",
            path.display(),
            imported.skipped.len() - SKIPPED_SHOWN
        );
    }
    if let Some(damage) = &imported.damage {
        eprintln!(
            "{}: {damage}; the frames before it are used",
            path.display()
        );
    }
    if imported.synthesized_times {
        eprintln!(
            "{}: a {} log has no times: request n is put at --start + n s, its reply 10 ms later",
            path.display(),
            imported.format
        );
    }
    Ok(imported)
}

fn parse_start(text: &str, offset: crate::model::time::UtcOffset) -> Result<i64, Failure> {
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(at.timestamp_micros());
    }
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S")
        .ok()
        .and_then(|local| {
            use chrono::TimeZone;
            offset.to_chrono().from_local_datetime(&local).single()
        })
        .map(|at| at.timestamp_micros())
        .ok_or_else(|| {
            Failure::usage(format!(
                "--start {text:?}: not a time\n  help: write e.g. 2026-01-01T08:00:00+08:00, or a local 2026-01-01T08:00:00"
            ))
        })
}

/// `cemsd capture convert`: any readable serial log to cemsd's pcapng capture format.
pub fn capture_convert(input: &Path, output: &Path, options: &LogOptions) -> Result<(), Failure> {
    let imported = read_log(input, options, None)?;
    let file = std::fs::File::create(output)
        .map_err(|e| Failure::runtime(format!("{}: {e}", output.display())))?;
    let write_failed = |e: std::io::Error| Failure::runtime(format!("{}: {e}", output.display()));
    let mut writer = crate::field::capture::CaptureWriter::new(std::io::BufWriter::new(file))
        .map_err(write_failed)?;
    for frame in &imported.frames {
        writer.write(frame).map_err(write_failed)?;
    }
    std::io::Write::flush(writer.get_mut()).map_err(write_failed)?;
    eprintln!(
        "{}: {} frames from a {} log, {} lines skipped",
        output.display(),
        imported.frames.len(),
        imported.format,
        imported.skipped.len()
    );
    Ok(())
}

/// Where `cemsd replay` puts what it produced.
#[derive(Debug, Clone, Default)]
pub struct ReplayOutput {
    /// A new store to write every record into.
    pub store: Option<std::path::PathBuf>,
    /// Records printed on stdout.
    pub format: Option<crate::field::replay::OutputFormat>,
    /// Print aggregates, gaps and exceedances too, not only readings.
    pub all: bool,
}

/// Records gathered before they are written out.
const REPLAY_BATCH: usize = 10_000;

/// `cemsd replay`: a captured log through the live decoding and processing, on log time.
pub fn replay(
    log: &Path,
    config_path: &Path,
    bus: Option<&str>,
    options: &LogOptions,
    output: &ReplayOutput,
) -> Result<(), Failure> {
    use crate::field::replay::{RecordWriter, Replayer};
    let Loaded {
        config, profiles, ..
    } = config::load(config_path)?;
    let imported = read_log(log, options, Some(config.site.utc_offset))?;
    let mut replayer = Replayer::new(&config, &profiles, bus)
        .map_err(|e| Failure::usage(format!("{}: {e}", config_path.display())))?;
    let mut store = match &output.store {
        Some(path) if path.exists() => {
            return Err(Failure::usage(format!(
            "{}: exists already\n  help: a replay writes a new store; remove it or name another",
            path.display()
        )))
        }
        Some(path) => Some(
            Store::open(path, StoreOptions::default())
                .map_err(|e| Failure::runtime(format!("{}: {e}", path.display())))?,
        ),
        None => None,
    };
    let stdout = std::io::stdout().lock();
    let mut writer = output.format.map(|format| {
        RecordWriter::new(
            std::io::BufWriter::new(stdout),
            format,
            output.all,
            crate::sink::influx::SiteFacts::of(&config),
        )
    });
    let mut records = Vec::with_capacity(REPLAY_BATCH);
    let mut flush = |records: &mut Vec<crate::store::Record>| -> Result<(), Failure> {
        if let Some(store) = &mut store {
            store
                .append(records)
                .map_err(|e| Failure::runtime(format!("store: {e}")))?;
        }
        if let Some(writer) = &mut writer {
            writer
                .write(records)
                .map_err(|e| Failure::runtime(format!("stdout: {e}")))?;
        }
        records.clear();
        Ok(())
    };
    for frame in &imported.frames {
        replayer.push(frame, &mut records);
        if records.len() >= REPLAY_BATCH {
            flush(&mut records)?;
        }
    }
    let summary = replayer.finish(&mut records);
    flush(&mut records)?;
    if let Some(writer) = writer {
        writer
            .into_inner()
            .map_err(|e| Failure::runtime(format!("stdout: {e}")))?;
    }
    eprintln!("{summary}");
    Ok(())
}
