//! The cluster as separate hosts: the scheduler, two executors and the S3-compatible object
//! store each in its own network namespace with its own address on a bridge, the client in
//! this test's namespace, so every plan, task, result and object crosses a (virtual) network
//! instead of loopback. Needs root and iproute2; elsewhere the test says why it did not run
//! and passes.

use std::path::Path;
use std::process::Command;

use vecfusion::VecfusionContext;
use vecfusion_cluster::local::{Host, LocalCluster};
use vecfusion_cluster::local_s3::LocalS3;
use vecfusion_cluster::remote_session_context;

/// Network namespaces joined by a bridge, removed when dropped.
struct Hosts {
    tag: String,
    hosts: Vec<Host>,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Hosts {
    /// `n` hosts on 10.<x>.<y>.0/24 (this namespace is .1 on the bridge), or why not.
    fn create(n: usize) -> Result<Self, String> {
        let id = std::process::id() % 10_000;
        let tag = format!("vf{id}");
        let subnet = format!("10.{}.{}", 100 + id % 100, id / 100 % 250);
        let mut hosts = Self { tag, hosts: vec![] };
        let bridge = format!("{}br", hosts.tag);
        ip(&["link", "add", &bridge, "type", "bridge"])?;
        ip(&["addr", "add", &format!("{subnet}.1/24"), "dev", &bridge])?;
        ip(&["link", "set", &bridge, "up"])?;
        for i in 0..n {
            let ns = format!("{}h{i}", hosts.tag);
            let (outer, inner) = (format!("{}o{i}", hosts.tag), format!("{}i{i}", hosts.tag));
            let address = format!("{subnet}.{}", 10 + i);
            ip(&["netns", "add", &ns])?;
            hosts.hosts.push(Host {
                ip: address.clone(),
                netns: Some(ns.clone()),
            });
            ip(&[
                "link", "add", &outer, "type", "veth", "peer", "name", &inner,
            ])?;
            ip(&["link", "set", &outer, "master", &bridge, "up"])?;
            ip(&["link", "set", &inner, "netns", &ns])?;
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{address}/24"),
                "dev",
                &inner,
            ])?;
            ip(&["-n", &ns, "link", "set", &inner, "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            ip(&[
                "-n",
                &ns,
                "route",
                "add",
                "default",
                "via",
                &format!("{subnet}.1"),
            ])?;
        }
        Ok(hosts)
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for (i, host) in self.hosts.iter().enumerate() {
            let _ = ip(&["link", "del", &format!("{}o{i}", self.tag)]);
            if let Some(ns) = &host.netns {
                let _ = ip(&["netns", "del", ns]);
            }
        }
        let _ = ip(&["link", "del", &format!("{}br", self.tag)]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduler_and_executors_on_separate_hosts_answer_a_vector_query() {
    let hosts = match Hosts::create(4) {
        Ok(h) => h,
        Err(why) => {
            eprintln!(
                "skipped: cannot make network namespaces here ({why}); run as root with iproute2"
            );
            return;
        }
    };
    let bin = Path::new(env!("CARGO_BIN_EXE_vecfusion-scheduler"))
        .parent()
        .unwrap();
    let store = LocalS3::start_on(&hosts.hosts[3]).await.unwrap();
    let cluster = LocalCluster::start_on(bin, &hosts.hosts[0], &hosts.hosts[1..3], 2)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        cluster
            .url()
            .starts_with(&format!("df://{}", hosts.hosts[0].ip))
    );
    let remote = remote_session_context(&cluster.url()).await.unwrap();
    // The table lives on the object store's host; its options travel with every plan.
    let statements = [
        store.create_table(
            "items",
            "hosts/items",
            "(id BIGINT NOT NULL, embedding FLOAT[8])",
        ),
        "INSERT INTO items SELECT id, vector FROM random_vectors(2000, 8, 4, 1)".into(),
        "CREATE VECTOR INDEX idx ON items (embedding) USING IVF_FLAT WITH (num_partitions = 4)"
            .into(),
    ];
    for sql in &statements {
        let result = match remote.vf_sql(sql).await {
            Ok(df) => df.collect().await.map(drop),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            panic!("{sql}: {e}\n{}", cluster.logs());
        }
    }
    let query = "SELECT id FROM items ORDER BY l2_distance(embedding, [1,0,0,0,0,0,0,0]) LIMIT 5";
    let rows = remote.vf_sql(query).await.unwrap().collect().await.unwrap();
    assert_eq!(rows.iter().map(|b| b.num_rows()).sum::<usize>(), 5);
    // Both executors are on hosts of their own, and at least one of them did the work.
    let logs = cluster.logs();
    assert!(logs.contains("Execute task"), "{logs}");
}
