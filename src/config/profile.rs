//! Device profiles: what an analyser model exposes over Modbus, written once per model in
//! `device-profiles/*.toml` and bound to an address and a stack by the site config.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::config::diagnostic::{Seg, SourceError, SourceText};
use crate::model::{Basis, Flag, Quantity, Unit};

/// Register table a channel is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegisterTable {
    Holding,
    Input,
}

/// Where a status indication lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusTable {
    Coil,
    DiscreteInput,
    Holding,
    Input,
}

impl StatusTable {
    pub fn is_register(self) -> bool {
        matches!(self, StatusTable::Holding | StatusTable::Input)
    }

    pub fn register_table(self) -> Option<RegisterTable> {
        match self {
            StatusTable::Holding => Some(RegisterTable::Holding),
            StatusTable::Input => Some(RegisterTable::Input),
            _ => None,
        }
    }
}

/// Value encoding on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataType {
    U16,
    I16,
    U32,
    I32,
    F32,
    F64,
}

impl DataType {
    pub const ALL: [DataType; 6] = [
        DataType::U16,
        DataType::I16,
        DataType::U32,
        DataType::I32,
        DataType::F32,
        DataType::F64,
    ];

    /// Number of 16-bit registers the type occupies.
    pub fn registers(self) -> u16 {
        match self {
            DataType::U16 | DataType::I16 => 1,
            DataType::U32 | DataType::I32 | DataType::F32 => 2,
            DataType::F64 => 4,
        }
    }

    pub fn is_float(self) -> bool {
        matches!(self, DataType::F32 | DataType::F64)
    }
}

/// Byte and word order of multi-register values, named as Telegraf names them:
/// ABCD big-endian; CDAB low word first; BADC bytes swapped in each word; DCBA little-endian.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
pub enum WordOrder {
    #[default]
    ABCD,
    CDAB,
    BADC,
    DCBA,
}

impl WordOrder {
    pub const ALL: [WordOrder; 4] = [
        WordOrder::ABCD,
        WordOrder::CDAB,
        WordOrder::BADC,
        WordOrder::DCBA,
    ];

    /// Registers arrive least significant word first.
    pub fn words_reversed(self) -> bool {
        matches!(self, WordOrder::CDAB | WordOrder::DCBA)
    }

    /// Bytes inside each register arrive least significant first.
    pub fn bytes_swapped(self) -> bool {
        matches!(self, WordOrder::BADC | WordOrder::DCBA)
    }
}

/// One measured value of the analyser.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Channel {
    pub name: String,
    pub quantity: Quantity,
    /// Unit of the value after scale/offset (or span) is applied.
    pub unit: Unit,
    #[serde(default)]
    pub basis: Basis,
    pub table: RegisterTable,
    /// As written in the manual; see `Profile::address_base`.
    pub address: u32,
    #[serde(rename = "type")]
    pub data_type: DataType,
    /// Overrides the profile's word order for this channel.
    pub word_order: Option<WordOrder>,
    #[serde(default = "one")]
    pub scale: f64,
    #[serde(default)]
    pub offset: f64,
    /// Raw counts at the two ends of the analogue span, e.g. [5530, 27648] for 4–20 mA on a
    /// Siemens S7 analogue input; with `span`, value = span0 + (raw − raw0)/(raw1 − raw0)·(span1 − span0).
    pub raw_range: Option<[f64; 2]>,
    /// Engineering values at the ends of `raw_range`; sites often override it per device.
    pub span: Option<[f64; 2]>,
    /// Measuring range in `unit`: a value above it is flagged T (over range).
    pub range: Option<[f64; 2]>,
    pub description: Option<String>,
}

fn one() -> f64 {
    1.0
}

/// A status indication that maps to an HJ 212 data flag for every reading of the device.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusBit {
    pub table: StatusTable,
    pub address: u32,
    /// Bit in a status register (0 = least significant); only for register tables.
    pub bit: Option<u8>,
    /// For status registers that hold a state code instead of bits: the flag applies when the
    /// register equals this value.
    pub equals: Option<u16>,
    /// The flag applies when the bit (or coil/input) is this value.
    #[serde(default = "active_high")]
    pub active: bool,
    pub flag: Flag,
    pub description: Option<String>,
}

fn active_high() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// File stem; how configs refer to the profile.
    #[serde(skip)]
    pub name: String,
    pub vendor: String,
    pub model: String,
    pub description: Option<String>,
    /// Where the register map comes from: manual title and page, or other reference.
    pub source: String,
    /// True only when the map was checked against the vendor's table or a real unit.
    pub verified: bool,
    /// 0: addresses are PDU addresses as sent on the wire; 1: they are 1-based register numbers.
    #[serde(default)]
    pub address_base: u8,
    #[serde(default)]
    pub word_order: WordOrder,
    /// Largest read the device accepts (Modbus allows 125 registers).
    #[serde(default = "max_registers")]
    pub max_registers_per_request: u16,
    /// For devices that answer only single-value reads.
    #[serde(default)]
    pub one_value_per_request: bool,
    #[serde(rename = "channel")]
    pub channels: Vec<Channel>,
    #[serde(rename = "status", default)]
    pub status: Vec<StatusBit>,
}

/// Largest register read Modbus allows (Modbus Application Protocol V1.1b, 6.3 and 6.4:
/// quantity of registers 1 to 125).
pub const MAX_REGISTERS_PER_READ: u16 = 125;

fn max_registers() -> u16 {
    MAX_REGISTERS_PER_READ
}

impl Profile {
    /// Parses and validates a profile; `name` is how configs will refer to it.
    pub fn parse(name: &str, file: &Path, text: &str) -> Result<Profile, SourceError> {
        let src = SourceText::new(file, text);
        let mut profile: Profile = toml::from_str(text).map_err(|e| src.from_toml(&e))?;
        profile.name = name.to_string();
        profile.validate(&src)?;
        Ok(profile)
    }

    pub fn channel(&self, name: &str) -> Option<&Channel> {
        self.channels.iter().find(|c| c.name == name)
    }

    /// PDU address of a register as written in this profile.
    pub fn pdu_address(&self, written: u32) -> u16 {
        // validate() guarantees written - base fits in u16
        (written.saturating_sub(u32::from(self.address_base))) as u16
    }

    pub fn word_order_of(&self, channel: &Channel) -> WordOrder {
        channel.word_order.unwrap_or(self.word_order)
    }

    fn validate(&self, src: &SourceText) -> Result<(), SourceError> {
        if self.address_base > 1 {
            return Err(src.error_at_path(
                &[Seg::Key("address_base")],
                format!("address base {} is not allowed", self.address_base),
                Some(
                    "use 0 when the manual gives PDU addresses, 1 when it numbers registers from 1"
                        .into(),
                ),
            ));
        }
        if self.max_registers_per_request == 0
            || self.max_registers_per_request > MAX_REGISTERS_PER_READ
        {
            return Err(src.error_at_path(
                &[Seg::Key("max_registers_per_request")],
                format!(
                    "{} registers per request is outside Modbus's limit",
                    self.max_registers_per_request
                ),
                Some("use a value from 1 to 125".into()),
            ));
        }
        if self.channels.is_empty() {
            return Err(src.error_at_path(
                &[Seg::Key("channel")],
                "a profile needs at least one channel",
                Some(
                    "add a [[channel]] table with name, quantity, unit, table, address and type"
                        .into(),
                ),
            ));
        }
        let mut names = HashSet::new();
        let mut occupied: BTreeMap<(RegisterTable, u32), usize> = BTreeMap::new();
        for (i, ch) in self.channels.iter().enumerate() {
            let at = |key| [Seg::Key("channel"), Seg::Index(i), Seg::Key(key)];
            if !names.insert(ch.name.as_str()) {
                return Err(src.error_at_path(
                    &at("name"),
                    format!("channel name {:?} is used twice", ch.name),
                    Some("give every channel of a profile its own name".into()),
                ));
            }
            check_address(
                src,
                &at("address"),
                self.address_base,
                ch.address,
                ch.data_type.registers(),
            )?;
            for r in 0..u32::from(ch.data_type.registers()) {
                if let Some(other) = occupied.insert((ch.table, ch.address + r), i) {
                    return Err(src.error_at_path(
                        &at("address"),
                        format!(
                            "channel {:?} overlaps channel {:?} at register {}",
                            ch.name,
                            self.channels[other].name,
                            ch.address + r
                        ),
                        Some(
                            "check the address and type of both channels against the manual".into(),
                        ),
                    ));
                }
            }
            if !ch.scale.is_finite() || ch.scale == 0.0 || !ch.offset.is_finite() {
                return Err(src.error_at_path(
                    &at("scale"),
                    "scale must be a finite non-zero number and offset finite",
                    None,
                ));
            }
            match (ch.raw_range, ch.span) {
                (Some(_), _) if ch.data_type.is_float() => {
                    return Err(src.error_at_path(
                        &at("raw_range"),
                        "raw_range applies to integer counts, not to floats",
                        Some("remove raw_range, or set type to i16/u16".into()),
                    ))
                }
                (Some(raw), _)
                    if raw[1].partial_cmp(&raw[0]) != Some(std::cmp::Ordering::Greater) =>
                {
                    return Err(src.error_at_path(
                        &at("raw_range"),
                        format!("raw_range [{}, {}] must rise", raw[0], raw[1]),
                        Some("e.g. raw_range = [5530, 27648] for 4-20 mA counts".into()),
                    ))
                }
                (None, Some(_)) => {
                    return Err(src.error_at_path(
                        &at("span"),
                        "span needs raw_range (the counts at the span's two ends)",
                        Some("add raw_range, e.g. [5530, 27648]".into()),
                    ))
                }
                _ => {}
            }
            for key in ["span", "range"] {
                let pair = if key == "span" { ch.span } else { ch.range };
                if let Some([lo, hi]) = pair {
                    if !(lo.is_finite() && hi.is_finite() && hi > lo) {
                        return Err(src.error_at_path(
                            &at(key),
                            format!("{key} [{lo}, {hi}] must be two finite numbers, low then high"),
                            None,
                        ));
                    }
                }
            }
        }
        validate_status(src, &[], self.address_base, &self.status)
    }

    /// This profile with the site's own status bindings (a `[[device]]`'s `status`) added to
    /// its own: a DCS or PLC input, or a register of the analyser the profile does not map,
    /// read from the same device and counted like the profile's entries.
    pub fn with_site_status(&self, site: &[StatusBit]) -> Profile {
        let mut profile = self.clone();
        profile.status.extend_from_slice(site);
        profile
    }
}

/// Checks status entries (a profile's `[[status]]`, or a device's site-level `status`) whose
/// addresses are written for `address_base`; errors name `prefix.status[i].key` in `src`.
pub(crate) fn validate_status(
    src: &SourceText,
    prefix: &[Seg],
    address_base: u8,
    status: &[StatusBit],
) -> Result<(), SourceError> {
    for (i, st) in status.iter().enumerate() {
        let at = |key| {
            let mut path = prefix.to_vec();
            path.extend([Seg::Key("status"), Seg::Index(i), Seg::Key(key)]);
            path
        };
        check_address(src, &at("address"), address_base, st.address, 1)?;
        match (st.table.is_register(), st.bit, st.equals) {
            (true, Some(b), None) if b < 16 => {}
            (true, Some(b), None) => {
                return Err(src.error_at_path(
                    &at("bit"),
                    format!("bit {b} does not exist in a 16-bit register"),
                    Some("use a bit from 0 (least significant) to 15".into()),
                ))
            }
            (true, None, Some(_)) => {}
            (true, _, _) => {
                return Err(src.error_at_path(
                    &at("table"),
                    "a status register needs exactly one of `bit` or `equals`",
                    Some("bit = N for a bit field, equals = N for a state code".into()),
                ))
            }
            (false, None, None) => {}
            (false, _, _) => {
                return Err(src.error_at_path(
                    &at("table"),
                    "coils and discrete inputs are single bits: `bit` and `equals` do not apply",
                    Some("remove bit/equals, or read the status from a register table".into()),
                ))
            }
        }
        if st.flag == Flag::N || st.flag == Flag::B {
            return Err(src.error_at_path(
                &at("flag"),
                format!("flag {} cannot come from an instrument status", st.flag),
                Some("use C, M, D, S, T or F".into()),
            ));
        }
    }
    Ok(())
}

fn check_address(
    src: &SourceText,
    path: &[Seg],
    address_base: u8,
    written: u32,
    len: u16,
) -> Result<(), SourceError> {
    let base = u32::from(address_base);
    if written < base || written - base + u32::from(len) > 0x1_0000 {
        return Err(src.error_at_path(
            path,
            format!("address {written} is outside the register space for address base {base}"),
            Some(format!(
                "addresses run from {base} to {}",
                0xFFFF + base + 1 - u32::from(len)
            )),
        ));
    }
    Ok(())
}

/// The profiles shipped in `device-profiles/`, compiled into the binary so a gateway
/// needs no files besides its config.
const SHIPPED: &[(&str, &str)] = &[
    (
        "juguang-cems-2000d",
        include_str!("../../device-profiles/juguang-cems-2000d.toml"),
    ),
    (
        "juguang-cems-2000d-nox",
        include_str!("../../device-profiles/juguang-cems-2000d-nox.toml"),
    ),
    (
        "sdl-model-1080",
        include_str!("../../device-profiles/sdl-model-1080.toml"),
    ),
    (
        "sdl-scs900-plc",
        include_str!("../../device-profiles/sdl-scs900-plc.toml"),
    ),
    (
        "sick-gm32",
        include_str!("../../device-profiles/sick-gm32.toml"),
    ),
    (
        "sick-mcs100ft",
        include_str!("../../device-profiles/sick-mcs100ft.toml"),
    ),
    (
        "siemens-ga700",
        include_str!("../../device-profiles/siemens-ga700.toml"),
    ),
    (
        "thermo-42i",
        include_str!("../../device-profiles/thermo-42i.toml"),
    ),
    (
        "thermo-43i",
        include_str!("../../device-profiles/thermo-43i.toml"),
    ),
];

/// Every profile a config may refer to: the shipped ones, plus those in an optional
/// site directory (which may replace a shipped one of the same name).
#[derive(Debug, Clone, Default)]
pub struct ProfileSet {
    profiles: BTreeMap<String, Profile>,
}

impl ProfileSet {
    pub fn shipped() -> Result<ProfileSet, SourceError> {
        let mut set = ProfileSet::default();
        for (name, text) in SHIPPED {
            let file = PathBuf::from(format!("device-profiles/{name}.toml"));
            set.insert(Profile::parse(name, &file, text)?);
        }
        Ok(set)
    }

    /// Adds every `*.toml` in `dir`.
    pub fn load_dir(&mut self, dir: &Path) -> Result<(), ProfileDirError> {
        let entries = std::fs::read_dir(dir).map_err(|e| ProfileDirError::Io(dir.into(), e))?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        paths.sort();
        for path in paths {
            let text =
                std::fs::read_to_string(&path).map_err(|e| ProfileDirError::Io(path.clone(), e))?;
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            self.insert(Profile::parse(&name, &path, &text).map_err(ProfileDirError::Invalid)?);
        }
        Ok(())
    }

    pub fn insert(&mut self, profile: Profile) {
        self.profiles.insert(profile.name.clone(), profile);
    }

    pub fn get(&self, name: &str) -> Option<&Profile> {
        self.profiles.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.profiles.keys().map(String::as_str)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Profile> {
        self.profiles.values()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProfileDirError {
    #[error("cannot read {0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("{0}")]
    Invalid(SourceError),
}

/// The text of a shipped profile, for `cemsd profiles show`.
pub fn shipped_text(name: &str) -> Option<&'static str> {
    SHIPPED.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
vendor = "Test"
model = "T1"
source = "unit test"
verified = false
word_order = "CDAB"

[[channel]]
name = "so2"
quantity = "SO2"
unit = "ppm"
table = "holding"
address = 0
type = "f32"

[[status]]
table = "discrete_input"
address = 4
flag = "C"
"#;

    fn parse(text: &str) -> Result<Profile, SourceError> {
        Profile::parse("t", Path::new("t.toml"), text)
    }

    #[test]
    fn minimal_profile_parses_with_defaults() {
        let p = parse(MINIMAL).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.address_base, 0);
        assert_eq!(p.max_registers_per_request, 125);
        let ch = &p.channels[0];
        assert_eq!(p.word_order_of(ch), WordOrder::CDAB);
        assert_eq!(ch.scale, 1.0);
        assert_eq!(ch.basis, Basis::Dry);
    }

    #[test]
    fn overlapping_channels_are_rejected_at_the_second_address() {
        let text = format!(
            "{MINIMAL}\n[[channel]]\nname = \"no\"\nquantity = \"NO\"\nunit = \"ppm\"\ntable = \"holding\"\naddress = 1\ntype = \"f32\"\n"
        );
        let err = parse(&text)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("channel[1].address"), "{err}");
        assert!(err.contains("overlaps channel \"so2\""), "{err}");
    }

    #[test]
    fn base_one_rejects_address_zero() {
        let text = MINIMAL.replace("word_order", "address_base = 1\nword_order");
        let err = parse(&text)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("channel[0].address"), "{err}");
    }

    #[test]
    fn status_bit_on_a_coil_is_rejected() {
        let text = MINIMAL.replace("address = 4\n", "address = 4\nbit = 3\n");
        let err = parse(&text)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("status[0].table"), "{err}");
    }

    #[test]
    fn unknown_key_names_line_and_allowed_keys() {
        let text = MINIMAL.replace("type = \"f32\"", "type = \"f32\"\nscael = 2");
        let err = parse(&text)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.starts_with("t.toml:15:"), "{err}");
        assert!(err.contains("scael"), "{err}");
        assert!(err.contains("allowed here"), "{err}");
    }

    #[test]
    fn shipped_names_are_unique() {
        // ProfileSet keys by name, so a repeated name would silently hide a profile.
        assert!(!SHIPPED.is_empty(), "no profile is shipped");
        let mut seen = HashSet::new();
        for (name, _) in SHIPPED {
            assert!(seen.insert(*name), "profile {name:?} is shipped twice");
        }
    }
}
