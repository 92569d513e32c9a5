//! A Redis Cluster of the test's own: three `redis-server --cluster-enabled yes` masters on free
//! ports of 127.0.0.1, joined with `redis-cli --cluster create … --cluster-replicas 0`, ready
//! when every node reports `cluster_state:ok`. A node can be killed and started again on its
//! port with its node file, so it rejoins with its slots. Stopped on drop.

#![allow(dead_code)]

use super::{free_port, wait_until};
use std::collections::hash_map::RandomState;
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct RedisCluster {
    nodes: Vec<Option<Child>>,
    pub ports: Vec<u16>,
    dir: tempfile::TempDir,
}

/// A port for a node whose cluster bus port (port + 10000) is free too. Both are taken below the
/// kernel's ephemeral range (32768 up, by default), so that no client socket of a test running
/// alongside can hold the bus port by the time the node binds it; elsewhere, any free pair.
fn node_port() -> u16 {
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768);
    let free = |port: u32| std::net::TcpListener::bind(("127.0.0.1", port as u16)).is_ok();
    for _ in 0..1000 {
        let port = if ephemeral_start >= 22768 {
            // Random in [ephemeral_start - 12768, ephemeral_start - 10000).
            let random = std::hash::BuildHasher::hash_one(&RandomState::new(), 0u8);
            ephemeral_start - 12768 + (random % 2768) as u32
        } else {
            u32::from(free_port())
        };
        if port + 10000 <= 65535 && free(port) && free(port + 10000) {
            return port as u16;
        }
    }
    panic!("no free port pair for a Redis Cluster node");
}

fn cli(port: u16, args: &[&str]) -> String {
    let output = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli (Debian package redis-tools, with redis-server)");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

impl RedisCluster {
    /// Starts three masters and creates the cluster.
    pub fn start() -> RedisCluster {
        let dir = tempfile::tempdir().unwrap();
        let ports: Vec<u16> = (0..3).map(|_| node_port()).collect();
        let mut cluster = RedisCluster {
            nodes: Vec::new(),
            ports: ports.clone(),
            dir,
        };
        for index in 0..ports.len() {
            let child = cluster.spawn(index);
            cluster.nodes.push(Some(child));
        }
        let addresses: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let created = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli --cluster create");
        assert!(created.success(), "redis-cli --cluster create failed");
        cluster.wait_ok();
        cluster
    }

    fn spawn(&self, index: usize) -> Child {
        let port = self.ports[index];
        let dir = self.dir.path().display().to_string();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "1000"])
            .args(["--cluster-config-file", &format!("nodes-{port}.conf")])
            .args(["--dir", &dir, "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is required: apt-get install redis-server");
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        let up = wait_until(Duration::from_secs(10), || {
            TcpStream::connect_timeout(&address, Duration::from_millis(100)).is_ok()
        });
        assert!(up, "redis-server on {port} did not start");
        child
    }

    /// Waits until every running node says `cluster_state:ok`.
    pub fn wait_ok(&self) {
        let ok = wait_until(Duration::from_secs(30), || {
            self.ports
                .iter()
                .zip(&self.nodes)
                .filter(|(_, node)| node.is_some())
                .all(|(port, _)| cli(*port, &["cluster", "info"]).contains("cluster_state:ok"))
        });
        assert!(ok, "the cluster did not become ok");
    }

    /// `redis://127.0.0.1:PORT` of every node (the gateway's seeds).
    pub fn seeds(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect()
    }

    /// The keys node `index` holds.
    pub fn key_count(&self, index: usize) -> u64 {
        cli(self.ports[index], &["dbsize"])
            .trim()
            .parse()
            .unwrap_or(0)
    }

    /// Every key on every running node matching `pattern`.
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        self.ports
            .iter()
            .zip(&self.nodes)
            .filter(|(_, node)| node.is_some())
            .flat_map(|(port, _)| {
                cli(*port, &["--scan", "--pattern", pattern])
                    .lines()
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Kills master `index` (its slots become unreachable: no replicas).
    pub fn kill(&mut self, index: usize) {
        if let Some(mut child) = self.nodes[index].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts node `index` again on its port with its node file; waits for the cluster.
    pub fn restart(&mut self, index: usize) {
        let child = self.spawn(index);
        self.nodes[index] = Some(child);
        self.wait_ok();
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for index in 0..self.nodes.len() {
            self.kill(index);
        }
    }
}
