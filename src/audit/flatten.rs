//! A TOML document as dotted items and their values, the form the audit trail compares:
//! `stack.unit1.reference_o2 = 6`, `device.so2.spans.so2 = [0, 750]`. Tables of an array
//! are named by their `id` (or `name`) where they have one, so reordering `[[stack]]`
//! tables is not a change; otherwise by their 1-based position.

use std::collections::BTreeMap;

use toml::Value;

/// Every leaf of `value` under `prefix`. An array of plain values is one leaf, written as
/// TOML writes it (`[0, 750]`); a string is its text without quotes.
pub fn flatten(prefix: &str, value: &Value, out: &mut BTreeMap<String, String>) {
    match value {
        Value::Table(table) => {
            for (key, value) in table {
                flatten(&join(prefix, key), value, out);
            }
        }
        Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_table) => {
            for (position, item) in items.iter().enumerate() {
                let label = ["id", "name"]
                    .iter()
                    .find_map(|key| item.get(key).and_then(Value::as_str))
                    .map_or_else(|| (position + 1).to_string(), str::to_string);
                flatten(&join(prefix, &label), item, out);
            }
        }
        Value::String(text) => {
            out.insert(prefix.to_string(), text.clone());
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

/// The items of a TOML document's text under `prefix`.
pub fn flatten_text(prefix: &str, text: &str) -> Result<BTreeMap<String, String>, String> {
    let value: Value = toml::from_str(text).map_err(|e| e.to_string())?;
    let mut out = BTreeMap::new();
    flatten(prefix, &value, &mut out);
    Ok(out)
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_of_an_array_are_named_by_their_id_and_lists_stay_whole() {
        let text = "[site]\nid = \"plant\"\n[[stack]]\nid = \"unit1\"\nreference_o2 = 6.0\nlimits = { so2 = 35 }\n[[stack]]\nduct_area_m2 = 28.3\n[[device]]\nid = \"so2\"\nspans = { so2 = [0, 750] }\n";
        let items = flatten_text("", text).unwrap_or_else(|e| panic!("{e}"));
        let pairs: Vec<(&str, &str)> = items
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            pairs,
            vec![
                ("device.so2.id", "so2"),
                ("device.so2.spans.so2", "[0, 750]"),
                ("site.id", "plant"),
                ("stack.2.duct_area_m2", "28.3"),
                ("stack.unit1.id", "unit1"),
                ("stack.unit1.limits.so2", "35"),
                ("stack.unit1.reference_o2", "6.0"),
            ]
        );
    }
}
