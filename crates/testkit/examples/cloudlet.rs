//! Runs testkit's namespace cloudlet for scripts (`bench/launch.sh`):
//! prints one JSON line describing it, then keeps it up until standard
//! input closes, and removes it.
//!
//! usage: cloudlet [xvnc|bulk|none]
#![allow(clippy::unwrap_used)]

use std::io::Read;

use testkit::cloudlet::{Cloudlet, CloudletOptions, VncServer};

fn main() {
    let vnc = match std::env::args().nth(1).as_deref() {
        None | Some("xvnc") => VncServer::Xvnc,
        Some("bulk") => VncServer::Bulk,
        Some("none") => VncServer::None,
        Some(other) => panic!("unknown VNC server {other:?}: xvnc, bulk or none"),
    };
    let cloudlet = Cloudlet::start(CloudletOptions {
        vnc,
        ..CloudletOptions::default()
    });
    let description = serde_json::json!({
        "tier1_url": cloudlet.tier1_url(),
        "endpoint": cloudlet.endpoint().to_string(),
        "namespace": cloudlet.namespace(),
        "deployment": cloudlet.deployment_name(),
    });
    println!("{description}");
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}
