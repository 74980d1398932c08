//! The terminal view of `cemsd run` on a tty: one line per device, line and MQTT source,
//! cut to the terminal's width and height so a redraw can erase exactly what it drew (a
//! wrapped line takes more rows than it counts, and the rows it leaves stay on screen).

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::model::comm::CommStats;
use crate::pipeline::live::DeviceLive;

/// Below this size a view says nothing useful; the daemon then draws nothing.
pub const MIN_COLUMNS: usize = 40;
pub const MIN_ROWS: usize = 4;

/// Everything the view shows, read at one moment.
#[derive(Debug, Default)]
pub struct TerminalFacts {
    pub devices: BTreeMap<Arc<str>, DeviceLive>,
    pub lines: BTreeMap<Arc<str>, CommStats>,
    /// `(source id, one-line summary)` of every MQTT source.
    pub mqtt: Vec<(String, String)>,
    pub committed: u64,
}

/// The view for a terminal of `columns` × `rows`: at most `rows - 1` lines (the cursor
/// sits on the last row), none longer than `columns` characters. `None` when the terminal
/// is too small to show anything.
pub fn view(facts: &TerminalFacts, columns: usize, rows: usize) -> Option<String> {
    if columns < MIN_COLUMNS || rows < MIN_ROWS {
        return None;
    }
    let mut lines = vec![format!(
        "cemsd: {} devices, {} records committed this run; value* = corrected to reference O2",
        facts.devices.len(),
        facts.committed
    )];
    lines.extend(facts.devices.iter().map(|(id, d)| device_line(id, d)));
    lines.extend(
        facts
            .lines
            .iter()
            .map(|(line, stats)| format!("line {line} {}", stats.summary())),
    );
    lines.extend(
        facts
            .mqtt
            .iter()
            .map(|(id, summary)| format!("mqtt {id} {summary}")),
    );
    let room = rows - 1;
    if lines.len() > room {
        let hidden = lines.len() - (room - 1);
        lines.truncate(room - 1);
        lines.push(format!("… {hidden} more lines: see the status page"));
    }
    let mut out = String::new();
    for line in lines {
        out.push_str(&cut(&line, columns));
        out.push('\n');
    }
    Some(out)
}

/// State, id, polls and errors, then each channel's value as the status page shows it:
/// the corrected one (marked `*`) where there is one, else the measured one.
fn device_line(id: &str, d: &DeviceLive) -> String {
    let state = match (d.polls, d.connected) {
        (0, _) => "wait",
        (_, true) => "ok  ",
        (_, false) => "DOWN",
    };
    let values: Vec<String> = d
        .values
        .iter()
        .map(|(ch, v)| {
            let (value, mark) = match v.corrected {
                Some(c) => (c, "*"),
                None => (v.value, ""),
            };
            if value.is_nan() {
                format!("{ch}=- [{}]", v.flag)
            } else {
                format!("{ch}{mark}={value:.2}{} [{}]", v.unit, v.flag)
            }
        })
        .collect();
    format!(
        "{state} {id:<14} polls {:<6} errors {:<4} {}",
        d.polls,
        d.errors,
        values.join(" ")
    )
}

/// `line` cut to `columns` characters, an ellipsis marking the cut.
fn cut(line: &str, columns: usize) -> String {
    if line.chars().count() <= columns {
        return line.to_string();
    }
    let mut kept: String = line.chars().take(columns - 1).collect();
    kept.push('…');
    kept
}

/// Columns and rows of the terminal on stdout, if it is one.
pub fn size() -> Option<(usize, usize)> {
    nix::ioctl_read_bad!(window_size, nix::libc::TIOCGWINSZ, nix::libc::winsize);
    let mut size = nix::libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ fills the winsize it is given and reads nothing else; stdout's
    // descriptor stays open for the process's life.
    let asked = unsafe { window_size(nix::libc::STDOUT_FILENO, &mut size) };
    match asked {
        Ok(_) if size.ws_col > 0 && size.ws_row > 0 => {
            Some((usize::from(size.ws_col), usize::from(size.ws_row)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Flag, Timestamp, Unit};
    use crate::pipeline::live::ChannelLive;

    fn device(polls: u64, channels: usize) -> DeviceLive {
        let mut d = DeviceLive {
            connected: true,
            polls,
            ..DeviceLive::default()
        };
        for i in 0..channels {
            d.values.insert(
                Arc::from(format!("ch{i}")),
                ChannelLive {
                    value: 20.0,
                    corrected: (i == 0).then_some(31.0),
                    quantity: None,
                    unit: Unit::MgPerM3,
                    flag: Flag::N,
                    ts: Timestamp(0),
                },
            );
        }
        d
    }

    #[test]
    fn a_redraw_fits_the_terminal_it_is_drawn_on() {
        let mut facts = TerminalFacts::default();
        for i in 0..40 {
            facts
                .devices
                .insert(Arc::from(format!("analyser-{i:02}")), device(3, 12));
        }
        // A 100 × 30 terminal: 12 channels make a line of about 260 characters, which
        // wrapped into three rows before.
        let text = view(&facts, 100, 30).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 29, "{text}");
        assert!(lines.iter().all(|l| l.chars().count() <= 100), "{text}");
        assert!(lines[1].ends_with('…'), "{}", lines[1]);
        // header + 27 of the 40 devices + the line that says 13 are not shown
        assert_eq!(lines[28], "… 13 more lines: see the status page");
        assert_eq!(view(&facts, 30, 30), None, "too narrow: nothing drawn");
    }

    #[test]
    fn a_corrected_value_is_marked_and_a_measured_one_is_not() {
        let mut facts = TerminalFacts::default();
        facts.devices.insert(Arc::from("so2"), device(1, 2));
        facts.devices.insert(Arc::from("quiet"), device(0, 0));
        let text = view(&facts, 200, 10).unwrap_or_default();
        assert!(
            text.contains("ch0*=31.00mg/m3 [N] ch1=20.00mg/m3 [N]"),
            "{text}"
        );
        assert!(text.contains("wait quiet"), "{text}");
    }
}
