//! mqtts:// with mutual TLS against mosquitto, using a CA made for the test with openssl:
//! cemsd verifies the broker and shows its own certificate; a broker signed by another CA
//! is refused.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::daemon::{write_config, Daemon};
use support::mqtt::{broker, json_readings, numbered_json};
use support::peers::mosquitto::{publish, Broker, BrokerSetup};
use support::ports::free_port;
use support::site::{head, stack};
use support::store::{readings, wait_for};
use support::time::now_ms;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("openssl: {e}"));
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA `name` and, signed by it, a certificate `leaf` for `subject_alt_name` and `usage`.
fn ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-days",
            "1",
            "-subj",
            &format!("/CN={name}"),
        ],
    );
}

fn leaf(dir: &Path, ca: &str, leaf: &str, extensions: &str) {
    std::fs::write(dir.join(format!("{leaf}.ext")), extensions).unwrap_or_else(|e| panic!("{e}"));
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{leaf}.key"),
            "-out",
            &format!("{leaf}.csr"),
            "-subj",
            &format!("/CN={leaf}"),
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{leaf}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            &format!("{leaf}.pem"),
            "-days",
            "1",
            "-extfile",
            &format!("{leaf}.ext"),
        ],
    );
}

fn site(dir: &Path, port: u16, ca_file: &str, client_id: &str) -> std::path::PathBuf {
    let text = head("tls", "", &format!("{client_id}/cemsd.db"))
        + &stack("")
        + &broker(
            "bureau",
            &format!("mqtts://localhost:{port}"),
            client_id,
            &format!(
                r#"ca_file = "{ca_file}"
client_cert = "cemsd.pem"
client_key = "cemsd.key"
reconnect_min = "100ms"
reconnect_max = "500ms"
"#
            ),
        )
        + &json_readings("plant/#", "");
    write_config(dir, &format!("{client_id}.toml"), &text)
}

#[test]
fn mutual_tls_with_a_test_ca() {
    let certs = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let dir = certs.path();
    ca(dir, "test-ca");
    ca(dir, "other-ca");
    leaf(
        dir,
        "test-ca",
        "broker",
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    );
    leaf(dir, "test-ca", "cemsd", "extendedKeyUsage=clientAuth\n");

    let plain_port = free_port();
    let broker = Broker::start_with(BrokerSetup {
        listener: format!(
            "cafile {d}/test-ca.pem\ncertfile {d}/broker.pem\nkeyfile {d}/broker.key\nrequire_certificate true\n",
            d = dir.display()
        ),
        // the test publishes on a plain listener of the same broker
        global: format!("listener {plain_port} 127.0.0.1\n"),
    });
    let trusting = Daemon::start_logged(
        &site(dir, broker.port, "test-ca.pem", "trusting"),
        &dir.join("trusting.log"),
        &[],
    );
    let wrong_ca = Daemon::start_logged(
        &site(dir, broker.port, "other-ca.pem", "wrong-ca"),
        &dir.join("wrong-ca.log"),
        &[],
    );
    std::thread::sleep(Duration::from_millis(1500));

    let n = 50;
    publish(
        plain_port,
        &numbered_json("plant/a", "d1", 0..n, now_ms(), 1),
    );
    let db = dir.join("trusting/cemsd.db");
    let arrived = wait_for(&db, |store| readings(store, "d1").len() as u64 >= n);
    for mut daemon in [trusting, wrong_ca] {
        let _ = daemon.terminate();
    }
    let log = std::fs::read_to_string(dir.join("trusting.log")).unwrap_or_default();
    assert!(
        arrived,
        "readings did not arrive over TLS:\n{log}\n{}",
        broker.log()
    );
    assert!(log.contains("connected"), "{log}");

    let refused = std::fs::read_to_string(dir.join("wrong-ca.log")).unwrap_or_default();
    assert!(
        refused.contains("UnknownIssuer") && !refused.contains("INFO connected"),
        "a broker signed by an unknown CA must be refused:\n{refused}"
    );
}
