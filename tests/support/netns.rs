//! Network namespaces for tests that need several hosts: a hub namespace holding a bridge,
//! one namespace per host plugged into it with a veth pair, and a veth from the test's own
//! namespace into the bridge, so the test reaches every host at its own address. Names and
//! the subnet come from the test's PID; everything is removed on drop, also when the test
//! fails. Creating namespaces needs root (CAP_NET_ADMIN): `Lan::create` says why it cannot.

use std::net::Ipv4Addr;
use std::process::Command;

/// One L2 segment 10.213.N.0/24 of namespaces; the test's side is .1.
pub struct Lan {
    tag: String,
    subnet: [u8; 3],
    namespaces: Vec<String>,
}

/// A host on the LAN: its namespace and address.
#[derive(Debug, Clone)]
pub struct Host {
    pub namespace: String,
    pub address: Ipv4Addr,
    /// Its veth's end on the bridge, taken down to cut the host off.
    plug: String,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let output = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

impl Lan {
    /// The hub and the test's veth into it; `Err` says why namespaces cannot be made here.
    pub fn create() -> Result<Lan, String> {
        let pid = std::process::id();
        let mut lan = Lan {
            tag: format!("cx{}", pid % 100_000),
            subnet: [10, 213, (pid % 250) as u8],
            namespaces: Vec::new(),
        };
        let hub = lan.name("hub");
        ip(&["netns", "add", &hub])?;
        lan.namespaces.push(hub.clone());
        let (outer, inner) = (lan.name("r"), lan.name("hr"));
        lan.in_hub(&["link", "add", "br0", "type", "bridge"])?;
        lan.in_hub(&["link", "set", "br0", "up"])?;
        ip(&[
            "link", "add", &outer, "type", "veth", "peer", "name", &inner,
        ])?;
        ip(&["link", "set", &inner, "netns", &hub])?;
        lan.in_hub(&["link", "set", &inner, "master", "br0"])?;
        lan.in_hub(&["link", "set", &inner, "up"])?;
        ip(&[
            "addr",
            "add",
            &format!("{}/24", lan.address(1)),
            "dev",
            &outer,
        ])?;
        ip(&["link", "set", &outer, "up"])?;
        Ok(lan)
    }

    fn name(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.tag)
    }

    fn in_hub(&self, args: &[&str]) -> Result<(), String> {
        let hub = self.name("hub");
        let mut all = vec!["netns", "exec", &hub, "ip"];
        all.extend_from_slice(args);
        ip(&all)
    }

    pub fn address(&self, host: u8) -> Ipv4Addr {
        let [a, b, c] = self.subnet;
        Ipv4Addr::new(a, b, c, host)
    }

    /// A new namespace `name` at address .`number`, with loopback up.
    pub fn add_host(&mut self, name: &str, number: u8) -> Host {
        let namespace = self.name(name);
        let (plug, end) = (
            self.name(&format!("p{number}")),
            self.name(&format!("e{number}")),
        );
        let address = self.address(number);
        let made = ip(&["netns", "add", &namespace]).and_then(|()| {
            self.namespaces.push(namespace.clone());
            let inside = |args: &[&str]| {
                let mut all = vec!["netns", "exec", &namespace, "ip"];
                all.extend_from_slice(args);
                ip(&all)
            };
            ip(&["link", "add", &plug, "type", "veth", "peer", "name", &end])?;
            ip(&["link", "set", &plug, "netns", &self.name("hub")])?;
            self.in_hub(&["link", "set", &plug, "master", "br0"])?;
            self.in_hub(&["link", "set", &plug, "up"])?;
            ip(&["link", "set", &end, "netns", &namespace])?;
            inside(&["addr", "add", &format!("{address}/24"), "dev", &end])?;
            inside(&["link", "set", &end, "up"])?;
            inside(&["link", "set", "lo", "up"])
        });
        made.unwrap_or_else(|e| panic!("host {name}: {e}"));
        Host {
            namespace,
            address,
            plug,
        }
    }

    /// Cuts `host` off the LAN (its cable pulled): its packets go nowhere, its peers see
    /// no reset, only silence.
    pub fn cut(&self, host: &Host) {
        self.in_hub(&["link", "set", &host.plug, "down"])
            .unwrap_or_else(|e| panic!("cut {}: {e}", host.namespace));
    }

    /// Plugs `host` back in.
    pub fn restore(&self, host: &Host) {
        self.in_hub(&["link", "set", &host.plug, "up"])
            .unwrap_or_else(|e| panic!("restore {}: {e}", host.namespace));
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        // the test's veth first (its peer goes with it), then the namespaces with theirs
        let _ = ip(&["link", "del", &self.name("r")]);
        for namespace in self.namespaces.iter().rev() {
            let _ = ip(&["netns", "del", namespace]);
        }
    }
}
