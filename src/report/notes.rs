//! Stored notes in words an operator reads. The store keeps notes as the pipeline wrote them
//! (short English phrases joined by "; ", gap causes as identifiers, `limit=… window_hours=…`),
//! stable for scripts and InfluxDB; reports and the status page show them through here, in
//! Chinese first. A phrase this table does not know is shown as stored, never dropped.

use crate::model::Quantity;
use crate::report::{Lang, B_HOURS_CAUSE};

/// A stored note in both languages, for the status page to show in the one it speaks.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NoteWords {
    pub zh: String,
    pub en: String,
}

impl NoteWords {
    pub fn of(note: Option<&str>) -> Option<NoteWords> {
        note.map(|note| NoteWords {
            zh: note_in(note, Lang::Zh),
            en: note_in(note, Lang::En),
        })
    }
}

/// `note` (as stored) in `lang`, each "; "-separated phrase on its own.
pub fn note_in(note: &str, lang: Lang) -> String {
    let words: Vec<String> = note
        .split("; ")
        .filter(|phrase| !phrase.is_empty())
        .map(|phrase| phrase_in(phrase, lang))
        .collect();
    words.join(lang.pick("；", "; "))
}

fn phrase_in(phrase: &str, lang: Lang) -> String {
    // gap causes (`GapCause::name`) and the receive-time mark (`RECEIVE_TIME_NOTE`)
    let fixed = match phrase {
        "communication_failure" => Some(("通讯故障", "communication failure")),
        "collector_silence" => Some(("采集中断（未读入数据）", "collector silent (no data read)")),
        "daemon_down" => Some(("采集程序未运行", "cemsd not running")),
        "filled" => Some(("已由补传数据填补", "filled by late data")),
        B_HOURS_CAUSE => Some(("小时数据无效，标记 B（通讯异常）", B_HOURS_CAUSE)),
        "receive_time" => Some((
            "按接收时间记录（设备未给数据时间）",
            "stamped at receipt (the device sent no time)",
        )),
        _ => None,
    };
    if let Some((zh, en)) = fixed {
        return lang.pick(zh, en).to_string();
    }
    // `process::chain`'s exceedance record: the limit and the averaging window it was judged on
    if let Some((limit, window)) = phrase
        .strip_prefix("limit=")
        .and_then(|rest| rest.split_once(" window_hours="))
    {
        return match lang {
            Lang::Zh => format!("限值 {limit} mg/m3，按 {window} 小时均值判定"),
            Lang::En => format!("limit {limit} mg/m3 on {window} h means"),
        };
    }
    if lang == Lang::En {
        return phrase.to_string();
    }
    chinese(phrase).unwrap_or_else(|| phrase.to_string())
}

/// The Chinese of the pipeline's phrases (`process::normalise::Missing::note`, the moisture
/// set value, a withdrawn exceedance, HJ 212's `-Cou`), or `None`.
fn chinese(phrase: &str) -> Option<String> {
    if phrase == "withdrawn: revised hours no longer exceed" {
        return Some("已撤销：修订后的小时数据不再超标".to_string());
    }
    if let Some(set) = phrase.strip_prefix("moisture set value ") {
        return Some(format!("烟气湿度取设定值 {set}"));
    }
    if let Some(total) = phrase.strip_prefix("cou=") {
        return Some(format!("累计值 {total}"));
    }
    if let Some(name) = phrase
        .strip_prefix("no fresh ")
        .and_then(|r| r.strip_suffix(" reading"))
    {
        return Some(format!("无有效{}读数（已超时）", input_name(name)?));
    }
    if let Some(name) = phrase
        .strip_prefix("no ")
        .and_then(|r| r.strip_suffix(" source"))
    {
        return Some(format!("未配置{}数据来源", input_name(name)?));
    }
    if let Some(name) = phrase
        .strip_prefix("no ")
        .and_then(|r| r.strip_suffix(" value"))
    {
        return Some(format!("{}无数值", input_name(name)?));
    }
    None
}

/// The Chinese name of a correction input as the pipeline names it in notes.
fn input_name(name: &str) -> Option<&'static str> {
    let quantity = match name {
        "moisture" => Quantity::Humidity,
        "flue temperature" => Quantity::Temperature,
        "flue pressure" => Quantity::Pressure,
        other => other.parse().ok()?,
    };
    Some(Lang::Zh.quantity(quantity))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_phrases_read_as_words_each_on_its_own() {
        let cases = [
            // a joined note: each phrase on its own, joined the language's way
            (
                "no fresh O2 reading; no flue pressure source",
                Lang::Zh,
                "无有效氧含量读数（已超时）；未配置烟气压力数据来源",
            ),
            ("no NO2 value", Lang::Zh, "二氧化氮无数值"),
            ("moisture set value 10 %", Lang::Zh, "烟气湿度取设定值 10 %"),
            ("cou=30.7", Lang::Zh, "累计值 30.7"),
            // gap causes, in both languages
            ("collector_silence", Lang::Zh, "采集中断（未读入数据）"),
            ("communication_failure", Lang::En, "communication failure"),
            // an exceedance's limit and window, and a withdrawn one
            (
                "limit=35 window_hours=1",
                Lang::Zh,
                "限值 35 mg/m3，按 1 小时均值判定",
            ),
            (
                "limit=35 window_hours=1",
                Lang::En,
                "limit 35 mg/m3 on 1 h means",
            ),
            (
                "withdrawn: revised hours no longer exceed; limit=50 window_hours=24",
                Lang::Zh,
                "已撤销：修订后的小时数据不再超标；限值 50 mg/m3，按 24 小时均值判定",
            ),
            // unknown phrases are kept as stored
            (
                "no fresh widget reading; something new",
                Lang::Zh,
                "no fresh widget reading；something new",
            ),
        ];
        for (note, lang, words) in cases {
            assert_eq!(note_in(note, lang), words, "{note:?} in {lang:?}");
        }
    }
}
