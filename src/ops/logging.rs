//! Log output: readable on a terminal, journald-friendly under systemd, JSON for log shippers.
//! Every line goes to stderr so stdout stays free for command output.

use std::io::IsTerminal;
use std::str::FromStr;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::format::{self, FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Colours on a terminal; without timestamps when journald (which stamps every line
    /// itself) reads the output, so the journal does not show two times per line.
    Human,
    /// One JSON object per line, with timestamp, level, message and fields.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "human" => Ok(LogFormat::Human),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!(
                "unknown log format {s:?}: expected \"human\" or \"json\""
            )),
        }
    }
}

/// The format asked for on the command line, else by `CEMSD_LOG_FORMAT`, else human.
/// An unknown value in the environment falls back to human with a warning rather than
/// stopping a service over its log style.
pub fn choose_format(flag: Option<LogFormat>, env: Option<&str>) -> (LogFormat, Option<String>) {
    match (flag, env) {
        (Some(format), _) => (format, None),
        (None, None) => (LogFormat::Human, None),
        (None, Some(text)) => match text.parse() {
            Ok(format) => (format, None),
            Err(e) => (LogFormat::Human, Some(format!("CEMSD_LOG_FORMAT: {e}"))),
        },
    }
}

/// The level filter from `CEMSD_LOG`: a default level and per-module levels, e.g.
/// `debug` or `info,cemsd::collect=debug`. Module paths are matched as prefixes, not as
/// regular expressions, which keeps a regex engine out of the binary. An invalid value
/// falls back to `info` with a warning rather than stopping a service over its log level.
pub fn choose_filter(env: Option<&str>) -> (Targets, Option<String>) {
    let default = || Targets::new().with_default(Level::INFO);
    match env.map(str::trim) {
        None | Some("") => (default(), None),
        Some(text) => match text.parse::<Targets>() {
            Ok(targets) => (targets, None),
            Err(e) => (
                default(),
                Some(format!(
                    "CEMSD_LOG={text:?} is not a level filter ({e}); expected e.g. \"debug\" or \"info,cemsd::collect=debug\""
                )),
            ),
        },
    }
}

/// Installs the global subscriber. The level filter comes from `CEMSD_LOG` (see
/// [`choose_filter`]), default `info`.
pub fn init(flag: Option<LogFormat>) {
    let env = std::env::var("CEMSD_LOG_FORMAT").ok();
    let (format, format_warning) = choose_format(flag, env.as_deref());
    let (filter, filter_warning) = choose_filter(std::env::var("CEMSD_LOG").ok().as_deref());
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false);
    let under_journald = std::env::var_os("JOURNAL_STREAM").is_some();
    match format {
        LogFormat::Json => builder.json().with_ansi(false).finish().with(filter).init(),
        LogFormat::Human if under_journald => builder
            .with_ansi(false)
            .event_format(Prioritised(
                format::Format::default()
                    .without_time()
                    .with_target(false)
                    .with_ansi(false),
            ))
            .finish()
            .with(filter)
            .init(),
        LogFormat::Human => builder
            .with_ansi(std::io::stderr().is_terminal())
            .finish()
            .with(filter)
            .init(),
    }
    if let Some(warning) = format_warning {
        tracing::warn!("{warning}; logging in the human format");
    }
    if let Some(warning) = filter_warning {
        tracing::warn!("{warning}; logging at info");
    }
}

/// The syslog priority journald reads from a `<N>` at the start of a line of a service's
/// output (sd-daemon(3): SD_ERR `<3>`, SD_WARNING `<4>`, SD_INFO `<6>`, SD_DEBUG `<7>`), so
/// `journalctl -p warning` shows warnings and errors only.
fn priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

/// A line format with the event's priority in front of it.
struct Prioritised<F>(F);

impl<S, N, F> FormatEvent<S, N> for Prioritised<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        write!(writer, "<{}>", priority(event.metadata().level()))?;
        self.0.format_event(ctx, writer, event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_level_filter_takes_a_default_and_module_levels_and_reports_nonsense() {
        let (targets, warning) = choose_filter(Some("warn,cemsd::collect=debug"));
        assert_eq!(warning, None);
        assert!(targets.would_enable("cemsd::collect::modbus", &Level::DEBUG));
        assert!(!targets.would_enable("cemsd::store", &Level::INFO));
        assert!(targets.would_enable("cemsd::store", &Level::WARN));
        let (targets, warning) = choose_filter(None);
        assert_eq!(warning, None);
        assert!(targets.would_enable("cemsd", &Level::INFO));
        assert!(!targets.would_enable("cemsd", &Level::DEBUG));
        let (targets, warning) = choose_filter(Some("cemsd=loud"));
        assert!(targets.would_enable("cemsd", &Level::INFO));
        assert!(!targets.would_enable("cemsd", &Level::DEBUG));
        let warning = warning.unwrap_or_default();
        assert!(warning.starts_with("CEMSD_LOG=\"cemsd=loud\""), "{warning}");
    }

    #[test]
    fn the_flag_beats_the_environment_and_a_bad_environment_value_is_reported() {
        assert_eq!(
            choose_format(Some(LogFormat::Human), Some("json")),
            (LogFormat::Human, None)
        );
        assert_eq!(choose_format(None, Some("json")), (LogFormat::Json, None));
        assert_eq!(choose_format(None, None), (LogFormat::Human, None));
        let (format, warning) = choose_format(None, Some("xml"));
        assert_eq!(format, LogFormat::Human);
        assert_eq!(
            warning.as_deref(),
            Some("CEMSD_LOG_FORMAT: unknown log format \"xml\": expected \"human\" or \"json\"")
        );
    }
}
