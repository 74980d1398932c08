//! Forwarders from the store to the places that need the data. Each sink reads the store
//! through its own connection after its own persistent cursor, so one sink's outage never
//! holds back another, and nothing is lost while a sink is down.

pub mod backlog;
pub mod hj212;
pub mod influx;
pub mod stop;
