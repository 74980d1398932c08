//! MQTT topic filters (with `+`, `#` and shared `$share/GROUP/…` subscriptions) and topic
//! templates that name the levels of a topic, e.g. `plant/{site}/{device}/{channel}`.

use std::fmt;

use serde::{Deserialize, Deserializer};

/// A validated subscription filter. `as_str` is what is sent to the broker; matching uses
/// the filter without its `$share/GROUP/` prefix, since the broker delivers plain topics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    text: String,
    /// Byte offset where the topic filter proper starts (after `$share/GROUP/`).
    start: usize,
}

impl Filter {
    pub fn parse(text: &str) -> Result<Filter, String> {
        let mut start = 0;
        if let Some(rest) = text.strip_prefix("$share/") {
            let Some((group, _)) = rest.split_once('/') else {
                return Err(format!(
                    "{text:?} is not a shared subscription: expected $share/GROUP/FILTER, e.g. \"$share/cemsd/plant/#\""
                ));
            };
            if group.is_empty() || group.contains(['+', '#']) {
                return Err(format!(
                    "{text:?} has no plain share group name: expected e.g. \"$share/cemsd/plant/#\""
                ));
            }
            start = "$share/".len() + group.len() + 1;
        }
        let filter = &text[start..];
        if filter.is_empty() {
            return Err("the topic filter is empty: expected e.g. \"plant/#\"".into());
        }
        let levels: Vec<&str> = filter.split('/').collect();
        for (i, level) in levels.iter().enumerate() {
            if level.contains('#') && (*level != "#" || i + 1 != levels.len()) {
                return Err(format!(
                    "{text:?} has '#' inside a level or before the last: expected '#' as the whole last level, e.g. \"plant/#\""
                ));
            }
            if level.contains('+') && *level != "+" {
                return Err(format!(
                    "{text:?} has '+' inside a level: expected '+' as a whole level, e.g. \"plant/+/so2\""
                ));
            }
        }
        Ok(Filter {
            text: text.to_string(),
            start,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    fn levels(&self) -> impl Iterator<Item = &str> {
        self.text[self.start..].split('/')
    }

    /// A `$share/GROUP/…` subscription.
    pub fn is_shared(&self) -> bool {
        self.start > 0
    }

    /// The filter without its `$share/GROUP/` prefix.
    pub fn topic_filter(&self) -> &str {
        &self.text[self.start..]
    }

    /// Whether level `index` (0-based, after any share prefix) is `+`.
    pub fn is_wildcard_at(&self, index: usize) -> bool {
        self.levels().nth(index) == Some("+")
    }

    /// The filter with the `+` at level `index` replaced by `literal`; none when that level
    /// is not `+`.
    pub fn with_level(&self, index: usize, literal: &str) -> Option<String> {
        if !self.is_wildcard_at(index) {
            return None;
        }
        let levels: Vec<&str> = self
            .levels()
            .enumerate()
            .map(|(i, level)| if i == index { literal } else { level })
            .collect();
        Some(format!("{}{}", &self.text[..self.start], levels.join("/")))
    }

    /// Whether the broker would deliver `topic` for this filter. Wildcards at the first
    /// level do not match topics starting with `$` (MQTT 3.1.1 §4.7.2).
    pub fn matches(&self, topic: &str) -> bool {
        let mut topic_levels = topic.split('/');
        for (i, level) in self.levels().enumerate() {
            if level == "#" {
                return !(i == 0 && topic.starts_with('$'));
            }
            let Some(t) = topic_levels.next() else {
                return false;
            };
            match level {
                "+" if i == 0 && t.starts_with('$') => return false,
                "+" => {}
                literal if literal == t => {}
                _ => return false,
            }
        }
        topic_levels.next().is_none()
    }

    /// Levels a matching topic has at least, and whether it may have more (`#`).
    fn shape(&self) -> (usize, bool) {
        let open = self.levels().last() == Some("#");
        let n = self.levels().count();
        if open {
            (n - 1, true)
        } else {
            (n, false)
        }
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Filter {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Filter::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Level {
    Literal(String),
    Named(String),
}

/// Names topic levels: each level is a literal or a whole `{name}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    levels: Vec<Level>,
}

/// What a template read from a topic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TopicParts<'a> {
    pub device: Option<&'a str>,
    pub channel: Option<&'a str>,
}

impl Template {
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut levels = Vec::new();
        let mut names = Vec::new();
        for level in text.split('/') {
            if let Some(name) = level.strip_prefix('{').and_then(|l| l.strip_suffix('}')) {
                let valid =
                    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if !valid {
                    return Err(format!(
                        "{text:?}: {level:?} is not a level name: expected e.g. {{device}}"
                    ));
                }
                if names.contains(&name) {
                    return Err(format!(
                        "{text:?} names {{{name}}} twice: expected each name once"
                    ));
                }
                names.push(name);
                levels.push(Level::Named(name.to_string()));
            } else if level.contains(['{', '}', '+', '#']) {
                return Err(format!(
                    "{text:?} has the level {level:?}: expected literal text or a whole {{name}} per level, e.g. \"plant/{{site}}/{{device}}/{{channel}}\""
                ));
            } else {
                levels.push(Level::Literal(level.to_string()));
            }
        }
        Ok(Template { levels })
    }

    pub fn levels(&self) -> usize {
        self.levels.len()
    }

    pub fn has(&self, name: &str) -> bool {
        self.levels
            .iter()
            .any(|l| matches!(l, Level::Named(n) if n == name))
    }

    /// The 0-based level `{name}` stands at.
    pub fn level_of(&self, name: &str) -> Option<usize> {
        self.levels
            .iter()
            .position(|l| matches!(l, Level::Named(n) if n == name))
    }

    /// Whether topics matching `filter` can have this template's shape.
    pub fn fits(&self, filter: &Filter) -> bool {
        match filter.shape() {
            (n, false) => self.levels.len() == n,
            (n, true) => self.levels.len() >= n,
        }
    }

    /// The named parts of `topic`, or None when the topic has another shape or a literal
    /// level differs.
    pub fn read<'a>(&self, topic: &'a str) -> Option<TopicParts<'a>> {
        let mut parts = TopicParts::default();
        let mut topic_levels = topic.split('/');
        for level in &self.levels {
            let t = topic_levels.next()?;
            match level {
                Level::Literal(text) if text != t => return None,
                Level::Literal(_) => {}
                Level::Named(name) if name == "device" => parts.device = Some(t),
                Level::Named(name) if name == "channel" => parts.channel = Some(t),
                Level::Named(_) => {}
            }
        }
        topic_levels.next().is_none().then_some(parts)
    }
}

impl<'de> Deserialize<'de> for Template {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Template::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(text: &str) -> Filter {
        Filter::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn wildcards_match_as_mqtt_says() {
        let f = filter("plant/+/so2");
        assert!(f.matches("plant/u1/so2"));
        assert!(!f.matches("plant/u1/so2/x"));
        assert!(!f.matches("plant/so2"));
        let all = filter("plant/#");
        assert!(all.matches("plant"), "# also matches the parent level");
        assert!(all.matches("plant/a/b/c"));
        assert!(!all.matches("plants/a"));
        assert!(!filter("#").matches("$SYS/broker/uptime"));
        assert!(!filter("+/broker").matches("$SYS/broker"));
        assert!(filter("$SYS/#").matches("$SYS/broker/uptime"));
    }

    #[test]
    fn shared_subscriptions_match_the_filter_after_the_group() {
        let f = filter("$share/cemsd/plant/#");
        assert_eq!(f.as_str(), "$share/cemsd/plant/#");
        assert!(f.matches("plant/u1/so2"));
        assert!(!f.matches("cemsd/plant/u1"));
        assert!(Filter::parse("$share/cemsd").is_err());
        assert!(Filter::parse("$share//plant/#").is_err());
        assert!(Filter::parse("$share/a+/plant/#").is_err());
    }

    #[test]
    fn malformed_filters_are_refused() {
        for bad in ["", "plant/#/x", "plant/a#", "plant/a+/b"] {
            assert!(Filter::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn templates_read_device_and_channel() {
        let t =
            Template::parse("plant/{site}/{device}/{channel}").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            t.read("plant/p1/dtu-7/SO2"),
            Some(TopicParts {
                device: Some("dtu-7"),
                channel: Some("SO2")
            })
        );
        assert_eq!(t.read("plant/p1/dtu-7"), None);
        assert_eq!(t.read("plant/p1/dtu-7/SO2/x"), None);
        assert_eq!(t.read("other/p1/dtu-7/SO2"), None);
        assert!(t.fits(&filter("plant/+/+/+")));
        assert!(t.fits(&filter("plant/#")));
        assert!(!t.fits(&filter("plant/+/+")));
    }

    #[test]
    fn malformed_templates_are_refused() {
        for bad in [
            "plant/{}/x",
            "plant/{a b}",
            "plant/dev-{device}",
            "a/{x}/{x}",
            "a/+",
        ] {
            assert!(Template::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
