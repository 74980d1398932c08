//! `[mqtt.partition]`: N bureau instances share a broker's devices so that each device is
//! handled by exactly one instance. A shared subscription (`$share/…`) hands each message to
//! any instance, so minutes, hours, gaps and exceedances of one device would be computed by
//! several instances from parts of its data; a partition instead gives every device one
//! owner and each instance subscribes only to its own devices' topics.
//!
//! The unit of the partition is the stack (measuring point), not the device: a stack's
//! values are computed from all its devices together (SO2 corrected with the O2 of another
//! analyser, flow from the flue-gas state), so all devices of one stack go to one instance.
//! The owner of a stack is chosen by rendezvous hashing (highest random weight, Thaler and
//! Ravishankar 1998): every instance scores the stack id and the highest score owns it.
//! Every instance computes the same owners from the same config, without talking to the
//! others, and going from N to N+1 instances moves only the stacks the new instance wins,
//! about 1/(N+1) of them.

use serde::Deserialize;

use crate::config::diagnostic::{Seg, SourceError, SourceText};

use super::{MqttSourceConfig, SubscriptionConfig};

/// Which share of the devices this instance handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Partition {
    /// This instance, 1 to `instances`.
    pub instance: u32,
    /// How many instances share the devices; the same in every instance's config.
    pub instances: u32,
}

/// More instances than a bureau runs; a typo (an extra zero) is caught.
const MAX_INSTANCES: u32 = 1024;

impl Partition {
    /// The instance (1-based) that owns the stack `stack` and its devices.
    pub fn owner(&self, stack: &str) -> u32 {
        (1..=self.instances)
            .max_by_key(|instance| score(stack, *instance))
            .unwrap_or(1)
    }

    pub fn owns(&self, stack: &str) -> bool {
        self.owner(stack) == self.instance
    }
}

/// The stack id and the instance number hashed: stable across builds and machines, which the
/// owners must be.
fn score(name: &str, instance: u32) -> u64 {
    fnv1a(name.bytes().chain([0]).chain(instance.to_le_bytes()))
}

/// FNV-1a, 64 bit (offset basis and prime from the FNV reference, isthe.com/chongo/tech/comp/fnv).
fn fnv1a(bytes: impl IntoIterator<Item = u8>) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.into_iter().fold(OFFSET, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    })
}

/// Keeps the devices of the stacks this instance owns; the others are another instance's, so this one
/// neither subscribes to them nor keeps state (minutes, gaps) for them.
pub fn keep_own_devices(source: &mut MqttSourceConfig) {
    if let Some(partition) = source.partition {
        source
            .devices
            .retain(|device| partition.owns(&device.stack));
    }
}

/// The filters a source subscribes to: as written, or, when partitioned, one per device of
/// an owned stack, its published name in the `{device}` level of the topic.
pub fn subscription_filters(source: &MqttSourceConfig) -> Vec<(String, &SubscriptionConfig)> {
    let mut filters = Vec::new();
    for subscription in &source.subscriptions {
        let level = subscription
            .topic
            .as_ref()
            .and_then(|t| t.level_of("device"));
        match (source.partition, level) {
            (Some(partition), Some(level)) => {
                for device in &source.devices {
                    if !partition.owns(&device.stack) {
                        continue;
                    }
                    let name = device.published_name();
                    if let Some(filter) = subscription.filter.with_level(level, name) {
                        filters.push((filter, subscription));
                    }
                }
            }
            _ => filters.push((subscription.filter.as_str().to_string(), subscription)),
        }
    }
    filters
}

/// A partition needs topics that name the device, so the broker routes each device's
/// messages to its owner alone.
pub fn validate(src: &SourceText, i: usize, source: &MqttSourceConfig) -> Result<(), SourceError> {
    let Some(partition) = source.partition else {
        return Ok(());
    };
    let at = |key| {
        [
            Seg::Key("mqtt"),
            Seg::Index(i),
            Seg::Key("partition"),
            Seg::Key(key),
        ]
    };
    if !(1..=MAX_INSTANCES).contains(&partition.instances) {
        return Err(src.error_at_path(
            &at("instances"),
            format!(
                "instances = {} is outside 1..={MAX_INSTANCES}",
                partition.instances
            ),
            Some("the number of cemsd instances that share these devices, e.g. 2".into()),
        ));
    }
    if !(1..=partition.instances).contains(&partition.instance) {
        return Err(src.error_at_path(
            &at("instance"),
            format!(
                "instance = {} is outside 1..={}",
                partition.instance, partition.instances
            ),
            Some("number the instances 1, 2, … up to instances".into()),
        ));
    }
    for (j, subscription) in source.subscriptions.iter().enumerate() {
        let at = |key| {
            [
                Seg::Key("mqtt"),
                Seg::Index(i),
                Seg::Key("subscribe"),
                Seg::Index(j),
                Seg::Key(key),
            ]
        };
        if subscription.filter.is_shared() {
            return Err(src.error_at_path(
                &at("filter"),
                "a partitioned source cannot use a shared subscription: the broker would hand its devices' messages to other instances",
                Some(format!(
                    "subscribe without $share/GROUP/, e.g. filter = \"{}\"",
                    subscription.filter.topic_filter()
                )),
            ));
        }
        let level = subscription
            .topic
            .as_ref()
            .and_then(|t| t.level_of("device"));
        let Some(level) = level else {
            return Err(src.error_at_path(
                &at(if subscription.topic.is_some() { "topic" } else { "filter" }),
                "a partitioned source subscribes to each of its devices' topics, but this subscription's topic names no {device} level",
                Some("add topic = \"…/{device}/…\" naming the level that carries the device's published name".into()),
            ));
        };
        if !subscription.filter.is_wildcard_at(level) {
            return Err(src.error_at_path(
                &at("filter"),
                format!(
                    "the filter's level {} (the topic's {{device}}) is not +",
                    level + 1
                ),
                Some("write + at the device level, e.g. filter = \"plant/+/json\" with topic = \"plant/{device}/json\"".into()),
            ));
        }
    }
    for (j, device) in source.devices.iter().enumerate() {
        let name = device.published_name();
        if name.contains(['+', '#', '/']) || name.is_empty() {
            return Err(src.error_at_path(
                &[
                    Seg::Key("mqtt"),
                    Seg::Index(i),
                    Seg::Key("device"),
                    Seg::Index(j),
                    Seg::Key("id"),
                ],
                format!("device {name:?} cannot be one level of a topic"),
                Some("a partitioned device publishes under a name without + # /".into()),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_device_has_one_owner_and_a_new_instance_moves_only_its_own() {
        let names: Vec<String> = (0..1000).map(|i| format!("plant-{i}.unit1")).collect();
        let two = |instance| Partition {
            instance,
            instances: 2,
        };
        let three = Partition {
            instance: 1,
            instances: 3,
        };
        let mut owned = [0usize; 2];
        let mut moved = 0;
        for name in &names {
            let owners: Vec<u32> = (1..=2).filter(|i| two(*i).owns(name)).collect();
            assert_eq!(owners.len(), 1, "{name} owned by {owners:?}");
            owned[owners[0] as usize - 1] += 1;
            let before = two(1).owner(name);
            let after = three.owner(name);
            if after != before {
                assert_eq!(after, 3, "{name} moved between the old instances");
                moved += 1;
            }
        }
        // about half each, about a third moved to the third instance
        assert!(owned.iter().all(|n| (400..=600).contains(n)), "{owned:?}");
        assert!((250..=420).contains(&moved), "{moved}");
    }

    #[test]
    fn the_hash_is_fnv1a_and_owners_stay_across_releases() {
        // the reference's test vectors: "" and "a"
        assert_eq!(fnv1a(*b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(*b"a"), 0xaf63_dc4c_8601_ec8c);
        // Instances of different releases must agree: a change here moves devices.
        let p = Partition {
            instance: 1,
            instances: 2,
        };
        let owners: Vec<u32> = ["plant-1", "plant-2", "plant-3", "plant-4"]
            .iter()
            .map(|n| p.owner(n))
            .collect();
        assert_eq!(owners, [2, 2, 1, 1]);
    }

    fn parse(subscribe: &str) -> Result<crate::config::Loaded, crate::config::ConfigError> {
        let text = format!(
            "[site]\nid = \"b\"\n[[stack]]\nid = \"plant-1\"\nsource_type = \"coal_boiler\"\n[[stack]]\nid = \"plant-3\"\nsource_type = \"coal_boiler\"\n\
             [[mqtt]]\nid = \"central\"\nurl = \"mqtt://127.0.0.1\"\nclient_id = \"c1\"\n\
             [mqtt.partition]\ninstance = 1\ninstances = 2\n{subscribe}\n\
             [[mqtt.device]]\nid = \"d1\"\nstack = \"plant-1\"\ninterval = \"10s\"\nchannels = {{ SO2 = {{ unit = \"mg/m3\" }} }}\n\
             [[mqtt.device]]\nid = \"d3\"\nstack = \"plant-3\"\ninterval = \"10s\"\nchannels = {{ SO2 = {{ unit = \"mg/m3\" }} }}\n"
        );
        crate::config::parse(std::path::Path::new("bureau.toml"), &text)
    }

    #[test]
    fn an_instance_keeps_and_subscribes_to_its_own_stacks_devices_only() {
        let loaded = parse(
            "[[mqtt.subscribe]]\nfilter = \"plant/+/json\"\ntopic = \"plant/{device}/json\"\nformat = \"json\"\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let source = &loaded.config.mqtt[0];
        // plant-3 is instance 1's, plant-1 instance 2's
        let devices: Vec<&str> = source.devices.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(devices, ["d3"]);
        let filters: Vec<String> = subscription_filters(source)
            .into_iter()
            .map(|(f, _)| f)
            .collect();
        assert_eq!(filters, ["plant/d3/json"]);
    }

    #[test]
    fn a_shared_or_deviceless_subscription_is_refused() {
        let shared = parse(
            "[[mqtt.subscribe]]\nfilter = \"$share/cemsd/plant/+/json\"\ntopic = \"plant/{device}/json\"\nformat = \"json\"\n",
        )
        .map(|_| ())
        .unwrap_err()
        .to_string();
        assert!(
            shared.starts_with("bureau.toml:17:10: mqtt[0].subscribe[0].filter: a partitioned source cannot use a shared subscription"),
            "{shared}"
        );
        let deviceless = parse("[[mqtt.subscribe]]\nfilter = \"plant/#\"\nformat = \"json\"\n")
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(
            deviceless.contains("mqtt[0].subscribe[0].filter: a partitioned source subscribes to each of its devices' topics"),
            "{deviceless}"
        );
    }
}
