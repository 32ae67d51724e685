//! The single-machine cloudlet as `olive2022 cloudlet` starts it
//! ([`LocalCloudlet`]: real tunnel server, real QEMU backend, real API),
//! with a stand-in registry that counts the connections made to it: a
//! recipe asking for more than the VM runner can run is refused before
//! anything is pulled, while a recipe within the limits does go to the
//! registry.

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use cloudlet::{LocalCloudlet, LocalCloudletConfig};
use sinfonia::Recipe;
use sinfonia::vmi::{ContainerDisk, Requests, Resources, VirtVnc, VmiValues};
use uuid::Uuid;
use vmnetx::bus::KubevirtBus;

const TOO_BIG: Uuid = Uuid::from_u128(0x65);
const FITS: Uuid = Uuid::from_u128(0x64);

/// A "registry" that answers every request with a 404 and counts the
/// connections.
fn counting_registry() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&connections);
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            counter.fetch_add(1, Ordering::SeqCst);
            stream
                .set_read_timeout(Some(Duration::from_secs(2)))
                .unwrap();
            let _ = stream.read(&mut [0; 4096]);
            let _ = stream.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    (host, connections)
}

fn write_recipe(dir: &Path, uuid: Uuid, registry: &str, cpus: u32) {
    let values = VmiValues {
        container_disk: ContainerDisk {
            repository: format!("{registry}/olive2022"),
            name: uuid.to_string(),
            tag: Some("latest".to_owned()),
            digest: None,
            bus: KubevirtBus::Sata,
        },
        resources: Resources {
            requests: Requests {
                cpu: cpus,
                memory: "256Mi".to_owned(),
            },
        },
        virtvnc: VirtVnc {
            fullname_override: "vmi".to_owned(),
        },
        container_disk_credentials: None,
        machine: None,
    };
    let yaml = Recipe {
        description: None,
        chart: "https://cmusatyalab.github.io/olive2022/vmi".to_owned(),
        version: "0.2.0".to_owned(),
        values: values.to_values(),
        restricted: true,
    }
    .to_yaml()
    .unwrap();
    std::fs::write(dir.join(format!("{uuid}.yaml")), yaml).unwrap();
}

fn deploy(api: &str, uuid: Uuid) -> (u16, serde_json::Value) {
    let key = "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI";
    let reply = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
        .post(format!("{api}/api/v1/deploy/{uuid}/{key}"))
        .send()
        .unwrap();
    let status = reply.status().as_u16();
    (
        status,
        serde_json::from_slice(&reply.bytes().unwrap()).unwrap(),
    )
}

#[test]
fn a_recipe_asking_for_65_vcpus_is_refused_without_any_pull() {
    let dir = tempfile::tempdir().unwrap();
    let recipes = dir.path().join("RECIPES");
    std::fs::create_dir(&recipes).unwrap();
    let (registry, connections) = counting_registry();
    write_recipe(&recipes, TOO_BIG, &registry, 65);
    write_recipe(&recipes, FITS, &registry, 2);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let config = LocalCloudletConfig {
        recipes_dir: recipes,
        listen: "127.0.0.1:0".parse().unwrap(),
        wg_listen: "127.0.0.1:0".parse().unwrap(),
        public_endpoint: None,
        data_dir: dir.path().join("data"),
        cache_dir: dir.path().join("data/cache"),
        accel: vmrunner::Accel::Tcg,
        max_vms: 2,
        deploy_rate: 0,
        cache_max_bytes: 0,
        lazy_pull: containerdisk::lazy::LazyMode::Never,
        lazy_threshold: 0,
        idle_timeout: Duration::from_secs(600),
        registry_ca: None,
        reporting: Default::default(),
        federation: cloudlet::federation::FederationConfig::default(),
        zeroconf: false,
    };
    let cloudlet = runtime.block_on(LocalCloudlet::start(config)).unwrap();
    let api = format!("http://{}", cloudlet.api_addr());
    assert!(dir.path().join("data/wireguard.key").is_file());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = runtime.spawn(cloudlet.run(async {
        let _ = stopped.await;
    }));

    let (status, problem) = deploy(&api, TOO_BIG);
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["title"], "Recipe cannot run here");
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("cpu 65 is out of range (1–64)"), "{detail}");
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "the image was pulled"
    );

    // The control: a recipe within the limits does go to the registry.
    let (status, problem) = deploy(&api, FITS);
    assert_eq!(status, 500, "{problem}");
    assert!(connections.load(Ordering::SeqCst) > 0, "{problem}");

    stop.send(()).unwrap();
    runtime.block_on(served).unwrap().unwrap();
}
