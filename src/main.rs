//! The `cemsd` command line: parses arguments and hands over to the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use cemsd::app::cli;

#[derive(Parser)]
#[command(
    name = "cemsd",
    version,
    about = "Continuous emissions monitoring daemon"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log line format: human or json (default: human, or $CEMSD_LOG_FORMAT).
    #[arg(long, global = true, value_parser = clap::builder::PossibleValuesParser::new(["human", "json"]))]
    log_format: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Poll the configured analysers and commit every reading to the store; SIGHUP reloads
    /// the config, SIGTERM stops after committing.
    Run {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a config (and the profiles it uses) without running anything.
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// List or print the shipped device profiles.
    Profiles {
        #[command(subcommand)]
        action: ProfilesAction,
    },
    /// Serve a device profile's registers over Modbus TCP with realistic values.
    Simulate {
        #[arg(long)]
        profile: String,
        #[arg(long, default_value = "127.0.0.1:5020")]
        listen: std::net::SocketAddr,
        /// Scenario file (fixed values, calibration, fault, exceedance, frozen, silent windows).
        #[arg(long)]
        scenario: Option<PathBuf>,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// The HJ 75-2017 report of a local day (hourly values), month (daily values) or year
    /// (monthly values) per stack, with emission totals, FGD removal and transmission rates.
    #[command(group(clap::ArgGroup::new("period").required(true).args(["day", "month", "year"])))]
    Report {
        #[arg(long, short)]
        config: PathBuf,
        /// Local date, YYYY-MM-DD.
        #[arg(long)]
        day: Option<String>,
        /// Local month, YYYY-MM.
        #[arg(long)]
        month: Option<String>,
        /// Year, YYYY.
        #[arg(long)]
        year: Option<String>,
        /// One stack (all when left out).
        #[arg(long)]
        stack: Option<String>,
        #[arg(long, value_enum, default_value = "text")]
        format: cemsd::report::Format,
        /// Write to FILE instead of standard output (required for xlsx).
        #[arg(long)]
        output: Option<PathBuf>,
        /// Language of headings: zh (default) or en.
        #[arg(long, value_enum, default_value = "zh")]
        lang: cemsd::report::Lang,
    },
    /// Captured serial traffic: convert the logs field tools write into cemsd's capture format.
    Capture {
        #[command(subcommand)]
        action: CaptureAction,
    },
    /// Run a captured serial log through the live decoding, normalisation, quality checks and
    /// aggregation, on the log's own clock; prints a summary on stderr.
    Replay {
        /// pcap/pcapng capture, or a socat, SSCOM, libmodbus, Modbus Poll or raw log.
        log: PathBuf,
        /// The site config whose RTU devices (by unit id) were on the captured bus.
        #[arg(long, short)]
        config: PathBuf,
        /// Only the devices of this bus (needed when unit ids repeat across buses).
        #[arg(long)]
        bus: Option<String>,
        #[command(flatten)]
        log_options: LogArgs,
        /// Write every record into a new store at this path.
        #[arg(long)]
        store: Option<PathBuf>,
        /// Print the readings on stdout.
        #[arg(long, value_enum)]
        output: Option<cemsd::field::replay::OutputFormat>,
        /// With --output: aggregates, gaps and exceedances too.
        #[arg(long)]
        all: bool,
    },
    /// HJ 212 tools for checking a line.
    Hj212 {
        #[command(subcommand)]
        action: Hj212Action,
    },
    /// Dead letters: what was refused or could not be delivered. List them, queue the lines
    /// an InfluxDB server refused for sending again, or drop them.
    DeadLetters {
        #[command(subcommand)]
        action: DeadLettersAction,
    },
    /// Check the store's tamper chain and audit trail: names the first commit whose rows
    /// were edited, inserted or deleted after it was made, and the periods affected. Exits
    /// 4 when anything is broken.
    #[command(group(clap::ArgGroup::new("which").required(true).args(["config", "store"])))]
    Verify {
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// The store file itself, without a config.
        #[arg(long)]
        store: Option<PathBuf>,
    },
    /// Print what the store holds.
    Query {
        #[arg(long, short)]
        config: PathBuf,
        /// Only this device.
        #[arg(long)]
        device: Option<String>,
        /// Only this quantity (SO2, NOx, O2, …).
        #[arg(long)]
        quantity: Option<String>,
        /// Only the latest value of each channel.
        #[arg(long)]
        latest: bool,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
}

#[derive(Subcommand)]
enum DeadLettersAction {
    /// Print them, oldest first.
    List {
        #[command(flatten)]
        filter: DeadLetterArgs,
    },
    /// Queue lines an InfluxDB sink refused for sending again; the sink sends them while
    /// cemsd runs, deletes each the server takes and keeps any refused again.
    Retry {
        #[command(flatten)]
        filter: DeadLetterArgs,
    },
    /// Delete them.
    Drop {
        #[command(flatten)]
        filter: DeadLetterArgs,
        /// Drop every dead letter when no filter is given.
        #[arg(long)]
        all: bool,
    },
}

/// Which dead letters: every condition given holds.
#[derive(clap::Args)]
struct DeadLetterArgs {
    #[arg(long, short)]
    config: PathBuf,
    /// A source such as influx:main or mqtt:plant, or the name after the colon.
    #[arg(long)]
    sink: Option<String>,
    /// A part of the reason, e.g. "HTTP 413".
    #[arg(long)]
    reason: Option<String>,
    /// Refused at or after this time: 2026-03-01, 2026-03-01T08:00 (site time) or RFC 3339.
    #[arg(long)]
    since: Option<String>,
    /// Refused before this time.
    #[arg(long)]
    until: Option<String>,
}

impl DeadLetterArgs {
    fn run(self, action: cemsd::app::dead_letters::Action) -> Result<(), cli::Failure> {
        let filter = cemsd::app::dead_letters::FilterArgs {
            sink: self.sink,
            reason: self.reason,
            since: self.since,
            until: self.until,
        };
        cemsd::app::dead_letters::run(&self.config, action, &filter)
    }
}

#[derive(Subcommand)]
enum CaptureAction {
    /// Convert a serial log (format detected, or --format) into a pcapng capture.
    Convert {
        input: PathBuf,
        output: PathBuf,
        #[command(flatten)]
        log_options: LogArgs,
    },
}

/// How to read a serial log.
#[derive(clap::Args)]
struct LogArgs {
    /// pcap, socat, sscom, libmodbus, modbus-poll or raw (default: detected).
    #[arg(long)]
    format: Option<String>,
    /// Local date of the first line, YYYY-MM-DD, for logs with the time of day only (SSCOM).
    #[arg(long)]
    date: Option<String>,
    /// Time of the first request for logs without times (libmodbus, Modbus Poll, raw).
    #[arg(long)]
    start: Option<String>,
    /// Offset of the local times in the log, e.g. +08:00 (replay: the site's by default).
    #[arg(long, allow_hyphen_values = true)]
    utc_offset: Option<String>,
}

impl From<LogArgs> for cli::LogOptions {
    fn from(a: LogArgs) -> Self {
        cli::LogOptions {
            format: a.format,
            date: a.date,
            start: a.start,
            utc_offset: a.utc_offset,
        }
    }
}

#[derive(Subcommand)]
enum Hj212Action {
    /// Print every packet in a file (or stdin) field by field; bad packets say where they break.
    Decode {
        /// File of captured packets; stdin when absent.
        file: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ProfilesAction {
    List,
    Show { name: String },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    cli::init_logging(cli.log_format.as_deref().and_then(|f| f.parse().ok()));
    let result = match cli.command {
        Command::Run { config } => cli::run(&config),
        Command::Check { config } => cli::check(&config),
        Command::Profiles {
            action: ProfilesAction::List,
        } => cli::profiles_list(),
        Command::Profiles {
            action: ProfilesAction::Show { name },
        } => cli::profiles_show(&name),
        Command::Simulate {
            profile,
            listen,
            scenario,
            seed,
        } => cli::simulate(&profile, listen, scenario.as_deref(), seed),
        Command::Report {
            config,
            day,
            month,
            year,
            stack,
            format,
            output,
            lang,
        } => {
            use cemsd::report::ReportPeriod;
            let period = match (day, month, year) {
                (Some(day), _, _) => ReportPeriod::day(&day),
                (_, Some(month), _) => ReportPeriod::month(&month),
                (_, _, Some(year)) => ReportPeriod::year(&year),
                (None, None, None) => Err("give --day, --month or --year".to_string()),
            };
            cli::report(
                &config,
                cli::ReportRequest {
                    period,
                    stack: stack.as_deref(),
                    format,
                    output: output.as_deref(),
                    lang,
                },
            )
        }
        Command::Capture {
            action:
                CaptureAction::Convert {
                    input,
                    output,
                    log_options,
                },
        } => cli::capture_convert(&input, &output, &log_options.into()),
        Command::Replay {
            log,
            config,
            bus,
            log_options,
            store,
            output,
            all,
        } => cli::replay(
            &log,
            &config,
            bus.as_deref(),
            &log_options.into(),
            &cli::ReplayOutput {
                store,
                format: output,
                all,
            },
        ),
        Command::Hj212 {
            action: Hj212Action::Decode { file },
        } => cli::hj212_decode(file.as_deref()),
        Command::DeadLetters { action } => {
            use cemsd::app::dead_letters::Action;
            match action {
                DeadLettersAction::List { filter } => filter.run(Action::List),
                DeadLettersAction::Retry { filter } => filter.run(Action::Retry),
                DeadLettersAction::Drop { filter, all } => filter.run(Action::Drop { all }),
            }
        }
        Command::Verify { config, store } => {
            cemsd::app::verify::verify(config.as_deref(), store.as_deref())
        }
        Command::Query {
            config,
            device,
            quantity,
            latest,
            limit,
        } => cli::query(&config, device, quantity, latest, limit),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("error: {}", failure.message);
            ExitCode::from(failure.exit_code)
        }
    }
}
