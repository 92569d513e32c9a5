#!/usr/bin/env python3
"""Portcullis load harness: one command, one machine, every case interleaved.

Starts a fast upstream and the development identity provider (examples/bench_fixture.rs),
nginx as a plain reverse proxy, and Portcullis with bench configs, then drives load with wrk
(HTTP/1.1) and h2load (HTTP/2 over TLS) against:
  (a) the upstream directly          (b) nginx reverse proxy (1 worker)
  (c) Portcullis passthrough          (d) full pipeline, one warm token
  (e) full pipeline, token cache off (signature verification on every request)
  (f) (d) over HTTP/2 with TLS       (g) (d) with 10,000 routes configured
  (h) (c) with a local rate limit    (i) (d) with the gateway at its default thread count
  (j) bare Pingora: the same framework and server tuning with no gateway logic at all
      (examples/bare_pingora.rs), the floor any Pingora-based gateway starts from
  (k) HAProxy 2.6 doing (d)'s checks with jwt_verify, warm token   (l) the same, a new token
      every request   (m) oauth2-proxy in bearer-token mode, warm token (built with Go once)
  (n) Apache 2.4 + mod_auth_openidc as a resource server, warm token
  (o) (k) with HAProxy at its default thread count (one per CPU), against (i)
      (benches/load/peers.py; each gateway passes a sanity pass first)
Each case runs ROUNDS times, interleaved; the report gives medians and spread (min-max),
ratios to (b) and (j), gateway RSS and CPU, and is written to benches/results/latest.md
(with a bar chart, latest.svg).

Usage: benches/load/harness.py [--rounds 3] [--duration 8] [--connections 64] [--threads 1]
Installs wrk, nginx-light, nghttp2-client, haproxy, apache2 and libapache2-mod-auth-openidc
with apt when missing; builds oauth2-proxy with Go once.
"""
import argparse, json, os, re, shutil, signal, socket, statistics, subprocess, sys, tempfile, time

from chart import render_svg
import peers

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
LUA = os.path.join(os.path.dirname(__file__), "report.lua")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"port {port} did not open")


def ensure_tools():
    """Installs, with apt, each package whose tool (or file) is missing."""
    def present(probe):
        return os.path.exists(probe) if probe.startswith("/") else (
            shutil.which(probe) or os.path.exists(f"/usr/sbin/{probe}"))
    missing = [pkg for probe, pkg in [("wrk", "wrk"), ("nginx", "nginx-light"), ("h2load", "nghttp2-client"),
                                      ("haproxy", "haproxy"), ("apache2", "apache2"),
                                      ("/usr/lib/apache2/modules/mod_auth_openidc.so",
                                       "libapache2-mod-auth-openidc")]
               if not present(probe)]
    if missing:
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        subprocess.run(sudo + ["apt-get", "update", "-qq"], check=True)
        subprocess.run(sudo + ["apt-get", "install", "-y", "-qq"] + missing, check=True,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


def many_routes(count):
    """`count` extra templated and prefix routes that the benchmark requests never match."""
    lines = []
    for i in range(count):
        if i % 2:
            lines.append(f"  - {{ name: extra-{i}, match: {{ path_prefix: /extra{i}/ }}, upstream: bench, auth: none }}")
        else:
            lines.append(f'  - {{ name: extra-{i}, match: {{ path: "/extra{i}/items/{{{{id}}}}" }}, upstream: bench, auth: none }}')
    return "\n".join(lines) + "\n"


def gateway_config(port, tls_port, fixture, work, threads, cache_entries, extra_routes=0):
    return _gateway_config(port, tls_port, fixture, work, threads, cache_entries) + many_routes(extra_routes)


def _gateway_config(port, tls_port, fixture, work, threads, cache_entries):
    return f"""
server:
  listen: ["127.0.0.1:{port}"]
  threads: {threads}
  pid_file: "{work}/portcullis-{port}.pid"
  tls: {{ listen: "127.0.0.1:{tls_port}", certificate: "{work}/cert.pem", private_key: "{work}/key.pem" }}
access_log: {{ path: off }}
identity_providers:
  bench:
    issuer: "{fixture['issuer']}"
    jwks_uri: "{fixture['jwks_uri']}"
    audiences: ["orders-api"]
    token_cache: {{ max_entries: {cache_entries} }}
upstreams:
  bench:
    targets: ["{fixture['upstream']}"]
rate_limits:
  per_client: {{ key: client_id, rate: 100000000/s }}
  per_ip: {{ key: client_ip, rate: 100000000/s }}
routes:
  - name: passthrough
    match: {{ path_prefix: /open/ }}
    strip_prefix: true
    upstream: bench
    auth: none
  - name: limited
    match: {{ path_prefix: /limited/ }}
    strip_prefix: true
    upstream: bench
    auth: none
    rate_limit: per_ip
  - name: full
    match: {{ path: "/orders/{{id}}" }}
    upstream: bench
    auth:
      providers: [bench]
      require: {{ any: [ {{ realm_role: reader }}, {{ group: /engineering }} ] }}
    rate_limit: per_client
    request:
      set_headers: {{ X-User-Id: "{{claims.sub}}", X-Client-Id: "{{claims.azp}}" }}
"""


NGINX_CONF = """
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  upstream backend {{ server {upstream}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
}}
"""


def proc_cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def run_wrk(url, args, headers=(), script=LUA):
    cmd = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration:g}s", "--latency", "-s", script]
    for h in headers:
        cmd += ["-H", h]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, check=True).stdout
    m = re.search(r"REPORT (\S+) (\S+) (\S+) (\S+) (\S+) (\S+)", out)
    if not m:
        raise SystemExit(f"unexpected wrk output:\n{out}")
    rps, p50, p99, p999, non2xx, errors = m.groups()
    return {"rps": float(rps), "p50": float(p50) / 1000, "p99": float(p99) / 1000,
            "p999": float(p999) / 1000, "errors": int(non2xx) + int(errors)}


def run_h2load(url, args, token):
    total = int(args.duration * 6000)
    cmd = ["h2load", "-n", str(total), "-c", str(args.connections), "-m", "10", "-t", str(args.threads),
           "-H", f"authorization: Bearer {token}", url]
    start = time.time()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out).group(1))
    status = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    failed = int(re.search(r"requests: \d+ total, \d+ started, \d+ done, \d+ succeeded, (\d+) failed", out).group(1))
    # h2load prints min/max/mean/sd of request times; it has no percentiles.
    mean = re.search(r"time for request:\s+\S+\s+\S+\s+(\S+)", out).group(1)
    def ms(v):
        return float(v[:-2]) if v.endswith("ms") else float(v[:-2]) / 1000 if v.endswith("us") else float(v[:-1]) * 1000
    return {"rps": rps, "p50": ms(mean), "p99": float("nan"), "p999": float("nan"),
            "errors": int(status.group(3)) + int(status.group(4)) + failed, "note": "p50 column is the mean (h2load)"}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=8)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--gateway-threads", type=int, default=1)
    parser.add_argument("--output", default=os.path.join(ROOT, "benches", "results", "latest.md"))
    args = parser.parse_args()
    ensure_tools()
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "portcullis", "--example", "bench_fixture",
                    "--example", "bare_pingora"],
                   cwd=ROOT, check=True)
    work = tempfile.mkdtemp(prefix="portcullis-bench-")
    children = []
    try:
        fixture, warm = start_fixture(work, children)
        nginx_port = free_port()
        with open(os.path.join(work, "nginx.conf"), "w") as f:
            f.write(NGINX_CONF.format(work=work, upstream=fixture["upstream"], port=nginx_port))
        nginx_bin = shutil.which("nginx") or "/usr/sbin/nginx"
        children.append(subprocess.Popen([nginx_bin, "-c", os.path.join(work, "nginx.conf"), "-g", "daemon off;"]))
        wait_port(nginx_port)
        bare_port = free_port()
        bare = subprocess.Popen([os.path.join(ROOT, "target/release/examples/bare_pingora"),
                                 f"127.0.0.1:{bare_port}", fixture["upstream"], str(args.gateway_threads)],
                                stderr=open(os.path.join(work, "bare_pingora.log"), "w"))
        children.append(bare)
        wait_port(bare_port)
        gateways = {}
        for name, cache, extra, threads in [("cached", 10000, 0, args.gateway_threads),
                                            ("nocache", 0, 0, args.gateway_threads),
                                            ("many", 10000, 10000, args.gateway_threads),
                                            ("default_threads", 10000, 0, os.cpu_count())]:
            port, tls_port = free_port(), free_port()
            path = os.path.join(work, f"{name}.yaml")
            with open(path, "w") as f:
                f.write(gateway_config(port, tls_port, fixture, work, threads, cache, extra))
            proc = subprocess.Popen([os.path.join(ROOT, "target/release/portcullis"), "run", "-c", path],
                                    stderr=open(os.path.join(work, f"{name}.log"), "w"))
            children.append(proc)
            wait_port(port)
            gateways[name] = (proc, port, tls_port)
        unique_lua = os.path.join(work, "unique.lua")
        with open(LUA) as src, open(unique_lua, "w") as dst:
            dst.write(f'tokens_file = "{work}/unique.tokens"\n' + src.read())
        haproxy_port = free_port()
        haproxy = peers.start_haproxy(work, fixture, haproxy_port, args.gateway_threads, children)
        wait_port(haproxy_port)
        # HAProxy's default: one thread per CPU (nbthread unset), against Portcullis's default (i).
        haproxy_all_port = free_port()
        haproxy_all = peers.start_haproxy(work, fixture, haproxy_all_port, os.cpu_count(), children,
                                          name="haproxy-default-threads")
        wait_port(haproxy_all_port)
        oauth2_port = free_port()
        oauth2_proxy = peers.start_oauth2_proxy(work, fixture, oauth2_port, children)
        if oauth2_proxy:
            wait_port(oauth2_port)
            peers.sanity("oauth2-proxy (m)", f"http://127.0.0.1:{oauth2_port}/orders/1", warm)
        apache_port = free_port()
        apache = peers.start_apache(work, fixture, apache_port, warm, children)
        if apache:
            wait_port(apache_port)
            peers.sanity("Apache + mod_auth_openidc (n)", f"http://127.0.0.1:{apache_port}/orders/1", warm)
        for name, url in [("Portcullis (d)", f"http://127.0.0.1:{gateways['cached'][1]}/orders/1"),
                          ("Portcullis (e)", f"http://127.0.0.1:{gateways['nocache'][1]}/orders/1"),
                          ("HAProxy (k)", f"http://127.0.0.1:{haproxy_port}/orders/1")]:
            peers.sanity(name, url, warm)
        up = fixture["upstream"]
        cached, nocache, many = gateways["cached"], gateways["nocache"], gateways["many"]
        default_threads = gateways["default_threads"]
        cases = [
            ("a", "upstream direct", None, lambda: run_wrk(f"http://{up}/orders/1", args)),
            ("b", "nginx reverse proxy", None, lambda: run_wrk(f"http://127.0.0.1:{nginx_port}/orders/1", args)),
            ("j", "bare Pingora proxy, no gateway logic", bare,
             lambda: run_wrk(f"http://127.0.0.1:{bare_port}/orders/1", args)),
            ("c", "Portcullis passthrough", cached[0], lambda: run_wrk(f"http://127.0.0.1:{cached[1]}/open/orders/1", args)),
            ("h", "(c) with a local rate limit per client IP", cached[0],
             lambda: run_wrk(f"http://127.0.0.1:{cached[1]}/limited/orders/1", args)),
            ("d", "Portcullis full pipeline, warm token", cached[0],
             lambda: run_wrk(f"http://127.0.0.1:{cached[1]}/orders/1", args, [f"Authorization: Bearer {warm}"])),
            ("e", "Portcullis full pipeline, verify every request", nocache[0],
             lambda: run_wrk(f"http://127.0.0.1:{nocache[1]}/orders/1", args, script=unique_lua)),
            ("f", "(d) over HTTP/2 + TLS (h2load)", cached[0],
             lambda: run_h2load(f"https://127.0.0.1:{cached[2]}/orders/1", args, warm)),
            ("g", "(d) with 10,000 routes configured", many[0],
             lambda: run_wrk(f"http://127.0.0.1:{many[1]}/orders/1", args, [f"Authorization: Bearer {warm}"])),
            ("i", f"(d) at the default thread count ({os.cpu_count()})", default_threads[0],
             lambda: run_wrk(f"http://127.0.0.1:{default_threads[1]}/orders/1", args, [f"Authorization: Bearer {warm}"])),
            ("k", "HAProxy 2.6 doing (d)'s checks, warm token", haproxy,
             lambda: run_wrk(f"http://127.0.0.1:{haproxy_port}/orders/1", args, [f"Authorization: Bearer {warm}"])),
            ("l", "HAProxy 2.6, a new token every request", haproxy,
             lambda: run_wrk(f"http://127.0.0.1:{haproxy_port}/orders/1", args, script=unique_lua)),
            ("o", f"(k) at HAProxy's default thread count ({os.cpu_count()})", haproxy_all,
             lambda: run_wrk(f"http://127.0.0.1:{haproxy_all_port}/orders/1", args,
                             [f"Authorization: Bearer {warm}"])),
        ] + ([("m", f"oauth2-proxy {peers.OAUTH2_PROXY_VERSION}, bearer mode, warm token", oauth2_proxy,
               lambda: run_wrk(f"http://127.0.0.1:{oauth2_port}/orders/1", args,
                               [f"Authorization: Bearer {warm}"]))] if oauth2_proxy else []) + (
            [("n", "Apache 2.4 + mod_auth_openidc, warm token", apache,
              lambda: run_wrk(f"http://127.0.0.1:{apache_port}/orders/1", args,
                              [f"Authorization: Bearer {warm}"]))] if apache else [])
        results = {key: [] for key, *_ in cases}
        for round_index in range(args.rounds):
            for key, label, proc, fn in cases:
                cpu0 = proc_cpu_seconds(proc.pid) if proc else 0
                t0 = time.time()
                r = fn()
                elapsed = time.time() - t0
                if proc:
                    r["cpu"] = (proc_cpu_seconds(proc.pid) - cpu0) / elapsed
                    r["cpu_us"] = r["cpu"] / r["rps"] * 1e6
                    r["rss"] = proc_rss_mib(proc.pid)
                results[key].append(r)
                print(f"round {round_index + 1} ({key}) {label}: {r['rps']:.0f} req/s, errors {r['errors']}", flush=True)
        idle_rss = idle_connections_rss(cached[0], cached[1], 1000)
        report = render(cases, results, args) + (
            f"Gateway RSS with 1,000 idle keep-alive connections: {idle_rss:.1f} MiB (target < 64 MiB).\n")
        print(report)
        os.makedirs(os.path.dirname(args.output), exist_ok=True)
        with open(args.output, "w") as f:
            f.write(report)
        with open(os.path.splitext(args.output)[0] + ".svg", "w") as f:
            f.write(render_svg(cases, results, f"Portcullis load harness: req/s, {args.rounds} rounds of "
                                               f"{args.duration:g} s, {args.connections} connections"))
    finally:
        stop_children(children)
        shutil.rmtree(work, ignore_errors=True)


def start_fixture(work, children):
    """Starts the upstream + identity provider fixture (tokens and a TLS certificate in `work`);
    returns its description and the warm token."""
    fixture_proc = subprocess.Popen([os.path.join(ROOT, "target/release/examples/bench_fixture"), work],
                                    stdout=subprocess.PIPE, text=True)
    children.append(fixture_proc)
    fixture = json.loads(fixture_proc.stdout.readline())
    warm = open(os.path.join(work, "warm.token")).read().strip()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-keyout", os.path.join(work, "key.pem"), "-out", os.path.join(work, "cert.pem")],
                   check=True, capture_output=True)
    return fixture, warm


def stop_children(children):
    """SIGTERM to every started process, newest first; SIGKILL for any still there after 15 s."""
    for child in reversed(children):
        child.send_signal(signal.SIGTERM)
    for child in children:
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.kill()


def idle_connections_rss(proc, port, count):
    """Opens `count` keep-alive connections, one request each, keeps them idle, reads RSS."""
    sockets = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"GET /open/status HTTP/1.1\r\nHost: bench\r\n\r\n")
        sockets.append(s)
    for s in sockets:
        s.settimeout(10)
        data = b""
        while b"\r\n\r\n" not in data:
            data += s.recv(4096)
    time.sleep(0.5)
    rss = proc_rss_mib(proc.pid)
    for s in sockets:
        s.close()
    return rss


def render(cases, results, args):
    def med(key, field):
        values = [r[field] for r in results[key] if field in r and r[field] == r[field]]
        return statistics.median(values) if values else float("nan")
    def spread(key):
        values = [r["rps"] for r in results[key]]
        return f"{min(values):.0f}-{max(values):.0f}"
    def paired(key, base, field="rps"):
        ratios = sorted(r[field] / b[field] for r, b in zip(results[key], results[base]))
        return f"{statistics.median(ratios):.3f} (rounds {ratios[0]:.3f}-{ratios[-1]:.3f})"
    nginx, bare = med("b", "rps"), med("j", "rps")
    cpu = open("/proc/cpuinfo").read()
    model = re.search(r"model name\s*:\s*(.*)", cpu)
    lines = [
        f"Machine: {os.cpu_count()} cores ({model.group(1) if model else 'unknown CPU'}), loopback. "
        f"{args.rounds} interleaved rounds of {args.duration:g} s, {args.connections} connections, "
        f"wrk -t{args.threads}; gateway threads = nginx workers = {args.gateway_threads}.",
        "",
        "| case | req/s (median) | spread | vs nginx (b) | vs bare Pingora (j) | p50 ms | p99 ms | p99.9 ms | non-2xx + errors | gateway CPU | gateway CPU µs/request | gateway RSS MiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, label, proc, _ in cases:
        errors = sum(r["errors"] for r in results[key])
        cpu_used = f"{med(key, 'cpu') * 100:.0f}%" if proc else "-"
        cpu_per_request = f"{med(key, 'cpu_us'):.1f}" if proc else "-"
        rss = f"{med(key, 'rss'):.1f}" if proc else "-"
        lines.append(
            f"| ({key}) {label} | {med(key, 'rps'):.0f} | {spread(key)} | {med(key, 'rps') / nginx:.2f}x | "
            f"{med(key, 'rps') / bare:.2f}x | {med(key, 'p50'):.2f} | {med(key, 'p99'):.2f} | {med(key, 'p999'):.2f} | {errors} | {cpu_used} | {cpu_per_request} | {rss} |")
    lines += ["", "(f): h2load reports no percentiles; its p50 column is the mean request time.",
              f"Targets: (d)/(b) = {med('d', 'rps') / nginx:.2f} (target >= 1.0); "
              f"(e)/(c) = {med('e', 'rps') / med('c', 'rps'):.2f} (target >= 0.6); "
              f"p99 (d)/(b) = {med('d', 'p99') / med('b', 'p99'):.2f} (target <= 1.5); "
              f"(g)/(d) = {med('g', 'rps') / med('d', 'rps'):.2f} (target >= 0.95); "
              f"(h)/(c) = {paired('h', 'c')} (target >= 0.95).",
              "(h)/(c) is the median of per-round ratios: (h) runs right after (c) in every round, so",
              "the pair sees the same machine load. Gateway CPU per request, less sensitive to the",
              f"load generator's share of the machine: (h)/(c) = {paired('h', 'c', 'cpu_us')} (target <= 1.05).",
              f"Peers (checks: {peers.HAPROXY_CHECKS}): (d)/(k) = {paired('d', 'k')} (target >= 2.0); "
              f"(e)/(l) = {paired('e', 'l')} (target >= 1.10); (i)/(o) = {paired('i', 'o')} "
              f"(both at their default thread count; target >= 1.5).",
              (f"oauth2-proxy ({peers.OAUTH2_PROXY_CHECKS}): (d)/(m) = {paired('d', 'm')}."
               if "m" in results else "oauth2-proxy: not run (no Go toolchain)."),
              (f"Apache + mod_auth_openidc ({peers.APACHE_CHECKS}): (d)/(n) = {paired('d', 'n')}."
               if "n" in results else "Apache + mod_auth_openidc: not installed, not run."),
              f"(e) - (d) gateway CPU per request: {med('e', 'cpu_us') - med('d', 'cpu_us'):.1f} µs "
              f"(target <= 1.5x one RS256 verify, `cargo bench --bench verify`).",
              f"Framework floor: bare Pingora (j) serves {bare / nginx:.2f}x nginx. Gateway CPU per request",
              f"relative to (j), median of per-round ratios: (c) {paired('c', 'j', 'cpu_us')}; "
              f"(d) {paired('d', 'j', 'cpu_us')}.",
              ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
