//! The shipped device profiles: every file in `device-profiles/` is compiled in and loads,
//! each profile carries the register facts its source gives, and a broken profile is
//! reported at the line and column where it is wrong.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use cemsd::config::profile::{
    shipped_text, Channel, DataType, Profile, ProfileDirError, ProfileSet, RegisterTable,
    StatusTable, WordOrder,
};
use cemsd::model::{Basis, Flag, Quantity, Unit};

fn profiles_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("device-profiles")
}

fn profile_files() -> Vec<PathBuf> {
    let dir = profiles_dir();
    let entries =
        fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn shipped() -> ProfileSet {
    ProfileSet::shipped().unwrap_or_else(|e| panic!("a shipped profile is invalid: {e}"))
}

fn profile<'a>(set: &'a ProfileSet, name: &str) -> &'a Profile {
    set.get(name)
        .unwrap_or_else(|| panic!("profile {name:?} is not shipped"))
}

fn channel<'a>(profile: &'a Profile, name: &str) -> &'a Channel {
    profile
        .channel(name)
        .unwrap_or_else(|| panic!("profile {:?} has no channel {name:?}", profile.name))
}

/// (table, PDU address, type, word order, unit, quantity) of a channel, for compact assertions.
fn wire(
    profile: &Profile,
    name: &str,
) -> (RegisterTable, u16, DataType, WordOrder, Unit, Quantity) {
    let ch = channel(profile, name);
    (
        ch.table,
        profile.pdu_address(ch.address),
        ch.data_type,
        profile.word_order_of(ch),
        ch.unit,
        ch.quantity,
    )
}

/// (table, address, bit, flag) of every status entry, in file order.
fn status_map(profile: &Profile) -> Vec<(StatusTable, u32, Option<u8>, Flag)> {
    profile
        .status
        .iter()
        .map(|s| (s.table, s.address, s.bit, s.flag))
        .collect()
}

/// Puts two registers, as they arrived, into one 32-bit word by the given order.
fn assemble(order: WordOrder, registers: [u16; 2]) -> u32 {
    let [first, second] = if order.bytes_swapped() {
        registers.map(u16::swap_bytes)
    } else {
        registers
    };
    let (high, low) = if order.words_reversed() {
        (second, first)
    } else {
        (first, second)
    };
    (u32::from(high) << 16) | u32::from(low)
}

#[test]
fn every_profile_file_is_shipped_and_loads() {
    let files = profile_files();
    let stems: BTreeSet<String> = files.iter().map(|p| stem(p)).collect();
    assert!(
        stems.len() >= 9,
        "expected the nine shipped profiles, found {stems:?}"
    );

    let set = shipped();
    let names: BTreeSet<String> = set.names().map(str::to_string).collect();
    assert_eq!(
        names, stems,
        "shipped set and device-profiles/*.toml differ"
    );

    let mut from_disk = ProfileSet::default();
    from_disk
        .load_dir(&profiles_dir())
        .unwrap_or_else(|e| panic!("device-profiles/ does not load: {e}"));
    for file in &files {
        let name = stem(file);
        let text = fs::read_to_string(file)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
        // Catches an entry that includes another file than its name says.
        assert_eq!(
            shipped_text(&name),
            Some(text.as_str()),
            "{name}: compiled-in text is not the file's"
        );
        assert_eq!(
            from_disk.get(&name),
            set.get(&name),
            "{name}: loaded from disk differs from the shipped profile"
        );
    }
}

#[test]
fn readme_lists_every_shipped_profile() {
    let path = profiles_dir().join("README.md");
    let readme =
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    for name in shipped().names() {
        assert!(
            readme.contains(&format!("| `{name}` |")),
            "README.md's table of shipped profiles misses {name}"
        );
    }
}

#[test]
fn every_profile_names_its_source_and_what_is_assumed() {
    for p in shipped().iter() {
        assert!(!p.source.trim().is_empty(), "{}: empty source", p.name);
        let description = p.description.as_deref().unwrap_or("");
        assert!(
            description.contains("Known") && description.contains("ssumed"),
            "{}: description must say what is known and what is assumed",
            p.name
        );
        // No shipped map has been checked against a unit yet.
        assert!(!p.verified, "{}: marked verified", p.name);
    }
}

#[test]
fn every_channel_unit_fits_its_quantity_and_gases_have_a_range() {
    for p in shipped().iter() {
        for ch in &p.channels {
            let allowed: &[Unit] = match ch.quantity {
                Quantity::SO2
                | Quantity::NO
                | Quantity::NO2
                | Quantity::NOx
                | Quantity::CO
                | Quantity::HCl
                | Quantity::NH3 => &[Unit::Ppb, Unit::Ppm, Unit::MgPerM3],
                Quantity::O2 | Quantity::CO2 | Quantity::Humidity => &[Unit::PercentVol],
                Quantity::Dust => &[Unit::MgPerM3],
                Quantity::Temperature => &[Unit::DegC],
                Quantity::Pressure => &[Unit::Pa, Unit::KPa],
                Quantity::Velocity => &[Unit::MetrePerSecond],
                Quantity::Flow => &[Unit::CubicMetrePerHour],
            };
            assert!(
                allowed.contains(&ch.unit),
                "{}.{}: {} in {}",
                p.name,
                ch.name,
                ch.quantity,
                ch.unit
            );
            if ch.quantity.is_pollutant() || ch.quantity == Quantity::O2 {
                assert!(ch.range.is_some(), "{}.{}: no range", p.name, ch.name);
            }
        }
    }
}

#[test]
fn thermo_43i_reads_so2_ppb_at_pdu_0_low_word_first() {
    let set = shipped();
    let p = profile(&set, "thermo-43i");
    assert_eq!(p.address_base, 0);
    assert_eq!(
        wire(p, "so2"),
        (
            RegisterTable::Holding,
            0,
            DataType::F32,
            WordOrder::CDAB,
            Unit::Ppb,
            Quantity::SO2
        )
    );
    assert_eq!(p.channels.len(), 1);
    assert_eq!(
        status_map(p),
        vec![
            (StatusTable::DiscreteInput, 4, None, Flag::C),
            (StatusTable::DiscreteInput, 9, None, Flag::D),
            (StatusTable::DiscreteInput, 46, None, Flag::C),
            (StatusTable::DiscreteInput, 49, None, Flag::D),
        ]
    );
}

#[test]
fn thermo_42i_reads_no_no2_nox_ppb_from_one_block() {
    let set = shipped();
    let p = profile(&set, "thermo-42i");
    let expect = |address, quantity| {
        (
            RegisterTable::Holding,
            address,
            DataType::F32,
            WordOrder::CDAB,
            Unit::Ppb,
            quantity,
        )
    };
    assert_eq!(wire(p, "no"), expect(0, Quantity::NO));
    assert_eq!(wire(p, "no2"), expect(2, Quantity::NO2));
    assert_eq!(wire(p, "nox"), expect(4, Quantity::NOx));
    assert_eq!(
        status_map(p),
        vec![
            (StatusTable::DiscreteInput, 4, None, Flag::C),
            (StatusTable::DiscreteInput, 10, None, Flag::D),
            (StatusTable::DiscreteInput, 63, None, Flag::C),
            (StatusTable::DiscreteInput, 66, None, Flag::D),
        ]
    );
}

#[test]
fn sick_mcs100ft_reads_input_registers_from_138() {
    let set = shipped();
    let p = profile(&set, "sick-mcs100ft");
    let layout: Vec<(&str, u16, Quantity, Unit)> = p
        .channels
        .iter()
        .map(|c| {
            (
                c.name.as_str(),
                p.pdu_address(c.address),
                c.quantity,
                c.unit,
            )
        })
        .collect();
    assert_eq!(
        layout,
        vec![
            ("hcl", 138, Quantity::HCl, Unit::MgPerM3),
            ("nh3", 142, Quantity::NH3, Unit::MgPerM3),
            ("co", 144, Quantity::CO, Unit::MgPerM3),
            ("no", 146, Quantity::NO, Unit::MgPerM3),
            ("so2", 150, Quantity::SO2, Unit::MgPerM3),
            ("no2", 152, Quantity::NO2, Unit::MgPerM3),
            ("h2o", 158, Quantity::Humidity, Unit::PercentVol),
            ("o2", 160, Quantity::O2, Unit::PercentVol),
            ("nox", 170, Quantity::NOx, Unit::MgPerM3),
        ]
    );
    for ch in &p.channels {
        assert_eq!(ch.table, RegisterTable::Input, "{}", ch.name);
        assert_eq!(ch.data_type, DataType::F32, "{}", ch.name);
        assert_eq!(p.word_order_of(ch), WordOrder::CDAB, "{}", ch.name);
    }
    // The block the data logger reads in one request: 34 registers from 138 = 138..=171.
    let last = p
        .channels
        .iter()
        .map(|c| c.address + u32::from(c.data_type.registers()) - 1)
        .max();
    assert_eq!(last, Some(171));
    assert_eq!(
        status_map(p),
        vec![
            (StatusTable::DiscreteInput, 4000, None, Flag::D),
            (StatusTable::DiscreteInput, 4487, None, Flag::M),
            (StatusTable::DiscreteInput, 4006, None, Flag::C),
        ]
    );
}

#[test]
fn sick_gm32_reads_17_register_component_blocks_from_5000() {
    let set = shipped();
    let p = profile(&set, "sick-gm32");
    let so2 = wire(p, "so2");
    let no = wire(p, "no");
    assert_eq!(
        so2,
        (
            RegisterTable::Input,
            5000,
            DataType::F32,
            WordOrder::ABCD,
            Unit::MgPerM3,
            Quantity::SO2
        )
    );
    assert_eq!(no.1 - so2.1, 17, "blocks are 17 registers apart");
    assert_eq!(channel(p, "so2").basis, Basis::Wet, "in-situ: wet gas");
    assert_eq!(
        status_map(p),
        vec![
            (StatusTable::Input, 5002, Some(0), Flag::D),
            (StatusTable::Input, 5002, Some(2), Flag::C),
            (StatusTable::Input, 5002, Some(8), Flag::C),
            (StatusTable::Input, 5019, Some(0), Flag::D),
            (StatusTable::Input, 5019, Some(2), Flag::C),
            (StatusTable::Input, 5019, Some(8), Flag::C),
            (StatusTable::Coil, 6003, None, Flag::M),
        ]
    );
}

#[test]
fn juguang_word_order_decodes_the_captured_reply() {
    let set = shipped();
    let p = profile(&set, "juguang-cems-2000d");
    let so2 = channel(p, "so2");
    assert_eq!(p.pdu_address(so2.address), 0);
    assert_eq!(so2.unit, Unit::MgPerM3);
    // Reply 01 03 04 1C D5 3F 8E 7D CF to 01 03 00 00 00 02 C4 0B: registers 0x1CD5 0x3F8E.
    let reply: [u8; 9] = [0x01, 0x03, 0x04, 0x1C, 0xD5, 0x3F, 0x8E, 0x7D, 0xCF];
    let registers = [
        u16::from_be_bytes([reply[3], reply[4]]),
        u16::from_be_bytes([reply[5], reply[6]]),
    ];
    let bits = assemble(p.word_order_of(so2), registers);
    assert_eq!(bits, 0x3F8E_1CD5);
    // 0x3F8E1CD5: exponent 0x7F (2^0), mantissa 0x0E1CD5 / 2^23 = 924885 / 8388608 = 0.110255,
    // so 1.110255 mg/m3.
    let value = f32::from_bits(bits);
    assert!((value - 1.110255).abs() < 1e-6, "decoded {value}");

    let nox_unit = profile(&set, "juguang-cems-2000d-nox");
    let expect = |address, quantity| {
        (
            RegisterTable::Holding,
            address,
            DataType::F32,
            WordOrder::CDAB,
            Unit::MgPerM3,
            quantity,
        )
    };
    assert_eq!(wire(nox_unit, "nox"), expect(0, Quantity::NOx));
    assert_eq!(wire(nox_unit, "no"), expect(2, Quantity::NO));
    assert_eq!(wire(nox_unit, "no2"), expect(4, Quantity::NO2));
}

#[test]
fn sdl_model_1080_reads_big_endian_floats_from_input_0x0c() {
    let set = shipped();
    let p = profile(&set, "sdl-model-1080");
    let layout: Vec<(u16, Quantity)> = p
        .channels
        .iter()
        .map(|c| (p.pdu_address(c.address), c.quantity))
        .collect();
    assert_eq!(
        layout,
        vec![
            (0x0C, Quantity::SO2),
            (0x0E, Quantity::NO),
            (0x10, Quantity::O2),
            (0x12, Quantity::NO2),
            (0x14, Quantity::NOx),
        ]
    );
    for ch in &p.channels {
        assert_eq!(ch.table, RegisterTable::Input, "{}", ch.name);
        assert_eq!(ch.data_type, DataType::F32, "{}", ch.name);
        assert_eq!(p.word_order_of(ch), WordOrder::ABCD, "{}", ch.name);
    }
}

#[test]
fn sdl_scs900_plc_scales_4_20_ma_counts_by_default_spans() {
    let set = shipped();
    let p = profile(&set, "sdl-scs900-plc");
    let layout: Vec<(&str, u16, Option<[f64; 2]>)> = p
        .channels
        .iter()
        .map(|c| (c.name.as_str(), p.pdu_address(c.address), c.span))
        .collect();
    assert_eq!(
        layout,
        vec![
            ("so2", 4000, Some([0.0, 750.0])),
            ("no", 4001, Some([0.0, 750.0])),
            ("o2", 4002, Some([0.0, 25.0])),
            ("h2o", 4004, Some([0.0, 40.0])),
            ("dust", 4005, Some([0.0, 100.0])),
            ("velocity", 4006, Some([0.0, 40.0])),
            ("temp", 4007, Some([0.0, 300.0])),
            ("pressure", 4008, Some([-5000.0, 5000.0])),
        ]
    );
    for ch in &p.channels {
        assert_eq!(ch.table, RegisterTable::Holding, "{}", ch.name);
        assert_eq!(ch.data_type, DataType::I16, "{}", ch.name);
        assert_eq!(ch.raw_range, Some([5530.0, 27648.0]), "{}", ch.name);
    }
    // 12 mA is count 5530 + 22118/2 = 16589: mid-span, e.g. SO2 375 mg/m3, pressure 0 Pa.
    let at_12_ma = |name: &str| {
        let ch = channel(p, name);
        let ([raw0, raw1], [lo, hi]) = (
            ch.raw_range.unwrap_or_default(),
            ch.span.unwrap_or_default(),
        );
        lo + (16589.0 - raw0) / (raw1 - raw0) * (hi - lo)
    };
    assert_eq!(at_12_ma("so2"), 375.0);
    assert_eq!(at_12_ma("pressure"), 0.0);
    assert_eq!(at_12_ma("temp"), 150.0);
    // The logger's bits 1..3 of the first byte on the wire are register bits 9..11.
    assert_eq!(
        status_map(p),
        vec![
            (StatusTable::Holding, 3995, Some(9), Flag::D),
            (StatusTable::Holding, 3995, Some(10), Flag::C),
            (StatusTable::Holding, 3995, Some(11), Flag::M),
        ]
    );
}

#[test]
fn siemens_ga700_reads_value_at_plus_2_of_each_12_register_block() {
    let set = shipped();
    let p = profile(&set, "siemens-ga700");
    let layout: Vec<(u16, Quantity, Unit)> = p
        .channels
        .iter()
        .map(|c| (p.pdu_address(c.address), c.quantity, c.unit))
        .collect();
    // Blocks at 0x00, 0x0C, 0x18; value at +2.
    assert_eq!(
        layout,
        vec![
            (0x02, Quantity::SO2, Unit::MgPerM3),
            (0x0E, Quantity::NO, Unit::MgPerM3),
            (0x1A, Quantity::O2, Unit::PercentVol),
        ]
    );
    for ch in &p.channels {
        assert_eq!(ch.table, RegisterTable::Holding, "{}", ch.name);
        assert_eq!(ch.data_type, DataType::F32, "{}", ch.name);
        assert_eq!(p.word_order_of(ch), WordOrder::ABCD, "{}", ch.name);
    }
    assert!(p.status.is_empty(), "GA700 status bits were not seen");
}

const BROKEN_WORD_ORDER: &str = r#"vendor = "Test"
model = "T1"
source = "unit test"
verified = false
word_order = "CBAD"

[[channel]]
name = "so2"
quantity = "SO2"
unit = "mg/m3"
table = "holding"
address = 0
type = "f32"
"#;

const RAW_RANGE_ON_FLOAT: &str = r#"vendor = "Test"
model = "T1"
source = "unit test"
verified = false

[[channel]]
name = "so2"
quantity = "SO2"
unit = "mg/m3"
table = "holding"
address = 0
type = "f32"
raw_range = [5530, 27648]
"#;

fn load_broken(text: &str) -> (PathBuf, cemsd::config::diagnostic::SourceError) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let path = dir.path().join("broken.toml");
    fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    let mut set = ProfileSet::default();
    match set.load_dir(dir.path()) {
        Err(ProfileDirError::Invalid(e)) => (path, e),
        other => panic!("expected an invalid-profile error, got {other:?}"),
    }
}

#[test]
fn a_syntax_error_in_a_profile_names_file_line_and_column() {
    let (path, err) = load_broken(BROKEN_WORD_ORDER);
    // Line 5 is `word_order = "CBAD"`; the value starts at column 14.
    assert_eq!(err.file, path);
    assert_eq!((err.line, err.column), (5, 14), "{err}");
    assert_eq!(err.key, "word_order");
    let shown = err.to_string();
    assert!(
        shown.starts_with(&format!("{}:5:14: word_order:", path.display())),
        "{shown}"
    );
    assert!(
        shown.contains("CDAB"),
        "the allowed orders are listed: {shown}"
    );
}

#[test]
fn a_semantic_error_in_a_profile_names_file_line_and_column() {
    let (path, err) = load_broken(RAW_RANGE_ON_FLOAT);
    // Line 13 is `raw_range = [5530, 27648]`; the value starts at column 13.
    assert_eq!(err.file, path);
    assert_eq!((err.line, err.column), (13, 13), "{err}");
    assert_eq!(err.key, "channel[0].raw_range");
    assert!(err.to_string().contains("not to floats"), "{err}");
}
