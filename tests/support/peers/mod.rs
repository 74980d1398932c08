//! The processes and servers a test talks to, each on loopback (or a pty) and stopped when
//! dropped: mosquitto, VictoriaMetrics, vmalert, Alertmanager and a webhook receiver,
//! pymodbus, a fault-injecting HTTP write endpoint, simulated analysers over Modbus TCP, and a
//! serial line between pty pairs.

pub mod alerting;
pub mod fault_server;
pub mod modbus;
pub mod mosquitto;
pub mod pty;
pub mod pymodbus;
pub mod victoria;

use super::{analyser, ports, process};
