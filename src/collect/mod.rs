//! Collectors: Modbus devices, MQTT brokers and HJ 212 data loggers, each handing the
//! pipeline its readings.

pub mod batch;
pub mod hj212;
pub mod modbus;
pub mod mqtt;
