//! pymodbus, the independent Modbus peer (tests/support/peers/modbus_server.py), serving the test
//! analyser's units over TCP, RTU over TCP or a serial port.

use std::path::Path;
use std::process::{Command, Stdio};

use super::analyser::values_of;
use super::process::Owned;

/// pymodbus serving `units` (unit → its [`values_of`]) on `where_` arguments; killed on drop.
pub struct Pymodbus {
    _process: Owned,
}

impl Pymodbus {
    pub fn start(where_: &[&str], units: &[u8]) -> Pymodbus {
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/peers/modbus_server.py");
        let mut command = Command::new("python3");
        command.arg(script).args(where_);
        for unit in units {
            let (so2, o2) = values_of(*unit);
            command.arg("--unit").arg(format!("{unit}={so2},{o2}"));
        }
        let mut process = Owned::spawn(
            command.stdout(Stdio::piped()).stderr(Stdio::null()),
            "pymodbus (pip install pymodbus)",
        );
        let mut ready = String::new();
        if let Some(out) = process.child_mut().stdout.as_mut() {
            use std::io::BufRead;
            let _ = std::io::BufReader::new(out).read_line(&mut ready);
        }
        assert_eq!(ready.trim(), "ready", "pymodbus did not start");
        Pymodbus { _process: process }
    }
}
