#!/usr/bin/env python3
"""Fleet limits bench: three Portcullis instances on loopback share one global limit through a
Redis Cluster (three masters, created here), driven well above the limit, in interleaved rounds:

  (s) sync_interval: 20ms  - counted locally, one batched Redis call per instance per interval
  (x) exact                - one Redis script per request (sync_interval absent)
  (l) local                - each instance limits alone (store: local): the latency baseline
  (m) sync_interval: 20ms, a new key each request - many light clients (the limit never binds):
                             what the batched sync costs Redis when keys are not reused

Each case runs three wrk processes at once (one per instance) for DURATION seconds. Reported per
case (medians over rounds, with min-max): admitted requests against the limit x time (and against
what an exact limiter admits: limit x time + capacity), Redis commands per request (the sum of
`INFO commandstats` calls over the cluster nodes — which also counts the TIME/GET/SET a script
runs — divided by every request sent, admitted or refused), requests/s and p99 latency (wrk). Targets: <= 0.1 Redis commands per request and
<= 5 % over-admission for (s); no request waits on Redis.

Usage: benches/load/fleet_limits.py [--rounds 3] [--duration 10] [--rate 3000] [--connections 16]
       [--cases sxlm]
Needs the release build (cargo build --release --bin portcullis --example bench_fixture), wrk,
redis-server and redis-cli; writes benches/results/fleet_limits.md.
"""
import argparse, os, random, re, socket, statistics, subprocess, sys, tempfile, threading, time, urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from harness import ROOT, LUA, ensure_tools, free_port, start_fixture, stop_children, wait_port  # noqa: E402

CASES = [("s", "sync_interval: 20ms"), ("x", "exact, one round trip a request"), ("l", "local per instance"),
         ("m", "sync_interval: 20ms, a new key each request")]


def cli(port, *args):
    return subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True, text=True).stdout


def cluster_port():
    """A port for a cluster node whose bus port (port + 10000) is free too, both below the
    kernel's ephemeral range when it starts high enough (no client socket can hold the bus port
    by the time the node binds it); elsewhere any free pair up to 55535."""
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        ephemeral_start = int(f.read().split()[0])

    def free(port):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return True
            except OSError:
                return False

    for _ in range(1000):
        port = (random.randrange(ephemeral_start - 12768, ephemeral_start - 10000)
                if ephemeral_start >= 22768 else free_port())
        if port <= 55535 and free(port) and free(port + 10000):
            return port
    raise SystemExit("no free port pair for a Redis Cluster node")


def start_cluster(work, children):
    ports = [cluster_port() for _ in range(3)]
    for port in ports:
        children.append(subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
             "--cluster-config-file", f"nodes-{port}.conf", "--dir", work, "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_port(port)
    subprocess.run(["redis-cli", "--cluster", "create", *[f"127.0.0.1:{p}" for p in ports],
                    "--cluster-replicas", "0", "--cluster-yes"], check=True, capture_output=True)
    deadline = time.time() + 30
    while not all("cluster_state:ok" in cli(p, "cluster", "info") for p in ports):
        if time.time() > deadline:
            raise SystemExit("the cluster did not become ok")
        time.sleep(0.1)
    return ports


def redis_calls(ports):
    total = 0
    for port in ports:
        total += sum(int(m) for m in re.findall(r"calls=(\d+)", cli(port, "info", "commandstats")))
    return total


def config(port, admin, upstream, seeds, case, rate):
    store = {"s": "store: redis\n    sync_interval: 20ms", "x": "store: redis", "l": "store: local",
             "m": "store: redis\n    sync_interval: 20ms"}[case]
    seeds = ", ".join(f'"redis://127.0.0.1:{p}"' for p in seeds)
    return f"""
server:
  listen: ["127.0.0.1:{port}"]
  threads: 1
admin:
  listen: "127.0.0.1:{admin}"
access_log: {{ path: off }}
redis:
  cluster: [{seeds}]
  timeout: 50ms
upstreams:
  api:
    targets: ["{upstream}"]
rate_limits:
  global:
    key: header:X-Tenant
    rate: {rate}/s
    {store}
routes:
  - name: api
    match: {{ path_prefix: / }}
    upstream: api
    auth: none
    rate_limit: global
"""


def admitted(admin):
    text = urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=5).read().decode()
    total = 0
    for line in text.splitlines():
        if line.startswith("portcullis_ratelimit_decisions_total{") and 'policy="global"' in line \
                and 'result="allowed"' in line:
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


def rotating_script(work, prefix):
    """report.lua with a new X-Tenant value each request, `prefix` first."""
    path = os.path.join(work, f"rotate-{prefix}.lua")
    with open(path, "w") as dst, open(LUA) as src:
        dst.write(f'rotate_header = "X-Tenant"\nrotate_prefix = "{prefix}-"\n' + src.read())
    return path


def wrk(url, args, out, script=LUA):
    cmd = ["wrk", "-t1", f"-c{args.connections}", f"-d{args.duration:g}s", "--latency", "-s", script,
           "-H", "X-Tenant: fleet", url]
    text = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps, p50, p99, _p999, _non2xx, _errors = re.search(r"REPORT (\S+) (\S+) (\S+) (\S+) (\S+) (\S+)", text).groups()
    out.append({"rps": float(rps), "p99": float(p99) / 1000})


def run_case(case, args, upstream, seeds, work):
    children = []
    instances = []
    try:
        for i in range(3):
            port, admin = free_port(), free_port()
            path = os.path.join(work, f"gw-{case}-{i}.yaml")
            with open(path, "w") as f:
                f.write(config(port, admin, upstream, seeds, case, args.rate))
            log = os.path.join(work, f"gw-{case}-{i}.log")
            children.append(subprocess.Popen([os.path.join(ROOT, "target/release/portcullis"), "run", "-c", path],
                                             stdout=subprocess.DEVNULL, stderr=open(log, "w"),
                                             env={**os.environ, "PORTCULLIS_LOG": "warn"}))
            try:
                wait_port(port)
                wait_port(admin)
            except SystemExit:
                raise SystemExit(f"instance {i} of ({case}) did not start:\n" + open(log).read())
            instances.append((port, admin))
        time.sleep(1.5)  # heartbeats: every instance learns that three share the limit
        for _, admin in instances:
            urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=5).read()
        # A fresh key each round: the bucket starts full, as an exact limiter's would.
        calls_before = redis_calls(seeds)
        admitted_before = sum(admitted(a) for _, a in instances)
        results, threads = [], []
        started = time.time()
        for i, (port, _) in enumerate(instances):
            script = rotating_script(work, f"{time.time_ns()}-{i}") if case == "m" else LUA
            t = threading.Thread(target=wrk, args=(f"http://127.0.0.1:{port}/_test/echo", args, results, script))
            t.start()
            threads.append(t)
        for t in threads:
            t.join()
        elapsed = time.time() - started
        time.sleep(0.2)  # the last syncs land
        calls = redis_calls(seeds) - calls_before
        admitted_now = sum(admitted(a) for _, a in instances) - admitted_before
        sent = sum(r["rps"] for r in results) * args.duration
        return {
            "admitted": admitted_now,
            "limit_time": args.rate * args.duration,
            "exact": args.rate * args.duration + args.rate,
            "elapsed": elapsed,
            "calls_per_request": calls / sent if sent else 0.0,
            "rps": sum(r["rps"] for r in results),
            "p99": statistics.median(r["p99"] for r in results),
        }
    finally:
        stop_children(children)
        # Each round gets a fresh global key: forget this round's state.
        for port in seeds:
            cli(port, "flushall")


def spread(values, fmt):
    return f"{fmt(statistics.median(values))} ({fmt(min(values))}-{fmt(max(values))})"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--rate", type=int, default=3000)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--cases", default="".join(case for case, _ in CASES),
                        help="which cases to run, e.g. sm (default: all)")
    args = parser.parse_args()
    cases = [(case, name) for case, name in CASES if case in args.cases]
    ensure_tools()
    for tool in ["redis-server", "redis-cli"]:
        if not subprocess.run(["which", tool], capture_output=True).returncode == 0:
            raise SystemExit(f"{tool} is needed: apt-get install redis-server")
    work = tempfile.mkdtemp(prefix="portcullis-fleet-")
    children = []
    try:
        fixture, _ = start_fixture(work, children)
        seeds = start_cluster(work, children)
        results = {case: [] for case, _ in cases}
        for round_index in range(args.rounds):
            for case, _ in cases:
                r = run_case(case, args, fixture["upstream"], seeds, work)
                results[case].append(r)
                versus = ("a new key each request" if case == "m" else
                          f"{r['admitted'] / r['limit_time'] - 1:+.1%} vs limit x time, "
                          f"{r['admitted'] / r['exact'] - 1:+.1%} vs exact")
                print(f"round {round_index + 1} ({case}): admitted {r['admitted']} ({versus}), "
                      f"{r['calls_per_request']:.4f} Redis calls/request, {r['rps']:.0f} req/s, p99 {r['p99']:.2f} ms",
                      flush=True)
    finally:
        stop_children(children)
    lines = [
        "# Fleet limits: three instances, one global limit, a Redis Cluster",
        "",
        f"`benches/load/fleet_limits.py --rounds {args.rounds} --duration {args.duration:g} --rate {args.rate} "
        f"--connections {args.connections}`: 3 x Portcullis (1 worker thread each), 3 x wrk -t1 "
        f"-c{args.connections} at once, one key (m: a new key each request), limit {args.rate}/s "
        f"(capacity {args.rate}), "
        f"a 3-master Redis Cluster on loopback, {args.rounds} interleaved rounds; medians (min-max). "
        "Redis commands count what `INFO commandstats` counts, the TIME/GET/SET inside a script included "
        "(the exact mode's one script a request is 3-4 commands).",
        "",
        "| case | admitted vs limit x time | vs exact limiter (limit x time + capacity) | Redis commands / request | req/s (sum) | p99 ms |",
        "|---|---|---|---|---|---|",
    ]
    pct = lambda v: f"{v:+.1%}"
    for case, name in cases:
        rs = results[case]
        if case == "m":  # every key is used once: the limit never binds
            over_limit = over_exact = "n/a: each key used once"
        else:
            over_limit = spread([r['admitted'] / r['limit_time'] - 1 for r in rs], pct)
            over_exact = spread([r['admitted'] / r['exact'] - 1 for r in rs], pct)
        lines.append(
            f"| ({case}) {name} | {over_limit} | {over_exact} | "
            f"{spread([r['calls_per_request'] for r in rs], lambda v: f'{v:.4f}')} | "
            f"{spread([r['rps'] for r in rs], lambda v: f'{v:.0f}')} | "
            f"{spread([r['p99'] for r in rs], lambda v: f'{v:.2f}')} |")
    if len(cases) == len(CASES):  # a subset is printed, not recorded
        with open(os.path.join(ROOT, "benches/results/fleet_limits.md"), "w") as f:
            f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
