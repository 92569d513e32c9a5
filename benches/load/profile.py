#!/usr/bin/env python3
"""Where does a request's CPU go? One harness case under wrk, profiled with call stacks.

Runs case (c) passthrough, (d) full pipeline with a warm token, (e) full pipeline verifying every
request, or (j) bare Pingora, exactly as benches/load/harness.py configures them (one gateway
thread, wrk -t1 -c64), records the gateway process with `perf record --call-graph dwarf` while
wrk runs, and charges each sample to an owner by walking its stack from the leaf: the innermost
frame of Portcullis's own code (its hooks and everything they call), else Pingora, else tokio,
else other; samples whose leaf is in the kernel are marked `kernel:` + the owner that made the
system call. CPU per request comes from /proc (the same measure as the harness's "gateway CPU
µs/request"), and each owner's share is printed in µs per request, then the heaviest frames of
Portcullis's own code.

Pingora's generic code instantiated for the gateway (`{closure}<...Gateway>`, `poll<pingora_...>`)
counts as Pingora, not as the gateway's: only frames of functions defined in Portcullis count.

Recording call stacks costs the gateway CPU (about a third more per request here), so read the
shares, not the absolute µs. Needs perf (Debian: linux-perf) and wrk; run it on an otherwise
idle machine.
Usage:   benches/load/profile.py CASE [--duration 3] [--top 25] [--binary PATH]
"""
import argparse, collections, os, re, shutil, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(__file__))
from harness import (ROOT, LUA, free_port, wait_port, ensure_tools, gateway_config,
                     proc_cpu_seconds, start_fixture, stop_children)

# Frames of Pingora's generic code, monomorphized for the gateway: their names mention it.
GENERIC = ("{closure", "{async", "poll<", "<core::future", "map<", "core::ptr::drop_in_place<pingora",
           "<pingora", "pingora")


def start_case(case, binary, work, children):
    """Starts the gateway (or bare Pingora) for `case`; returns (pid, url, wrk arguments)."""
    fixture, warm = start_fixture(work, children)
    port = free_port()
    if case == "j":
        command = [os.path.join(ROOT, "target/release/examples/bare_pingora"),
                   f"127.0.0.1:{port}", fixture["upstream"], "1"]
        path, extra = "/orders/1", []
    else:
        config = os.path.join(work, "gateway.yaml")
        with open(config, "w") as f:
            f.write(gateway_config(port, free_port(), fixture, work, 1, 0 if case == "e" else 10000))
        command = [binary, "run", "-c", config]
        path = "/open/orders/1" if case == "c" else "/orders/1"
        extra = ["-H", f"Authorization: Bearer {warm}"] if case == "d" else []
        if case == "e":
            unique_lua = os.path.join(work, "unique.lua")
            with open(LUA) as src, open(unique_lua, "w") as dst:
                dst.write(f'tokens_file = "{work}/unique.tokens"\n' + src.read())
            extra = ["-s", unique_lua]
    proc = subprocess.Popen(command, stderr=open(os.path.join(work, "gateway.log"), "w"))
    children.append(proc)
    wait_port(port)
    return proc.pid, f"http://127.0.0.1:{port}{path}", extra


def stacks_of(script_text):
    """perf script output -> list of stacks, each a list of (in_kernel, function name), leaf first."""
    stacks, current = [], []
    for line in script_text.splitlines():
        if not line.strip():
            if current:
                stacks.append(current)
            current = []
        elif line[0] in " \t":
            parts = line.strip().split(" ", 1)
            if len(parts) == 2:
                name = re.sub(r"(\+0x[0-9a-f]+)? \([^()]*\)$", "", parts[1]).strip()
                current.append(("[kernel" in parts[1], name))
        else:
            current = []
    if current:
        stacks.append(current)
    return stacks


def is_gateway_code(name):
    return ("portcullis::" in name or "Gateway" in name) and not name.startswith(GENERIC)


def attribute(stacks):
    """Owner of each sample, and the innermost gateway frame of the gateway's samples."""
    owners, frames = collections.Counter(), collections.Counter()
    for stack in stacks:
        owner = "other"
        for in_kernel, name in stack:
            if in_kernel:
                continue
            if is_gateway_code(name):
                owner = "portcullis"
                frames[name[:120]] += 1
                break
            if "pingora" in name:
                owner = "pingora"
                break
            if "tokio::" in name:
                owner = "tokio"
                break
        owners[("kernel:" if stack[0][0] else "") + owner] += 1
    return owners, frames


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("case", choices=["c", "d", "e", "j"])
    parser.add_argument("--duration", type=int, default=3, help="seconds recorded")
    parser.add_argument("--top", type=int, default=25, help="gateway frames listed")
    parser.add_argument("--binary", help="the portcullis binary (default: this tree's release build)")
    args = parser.parse_args()
    ensure_tools()
    if not shutil.which("perf"):
        raise SystemExit("perf is missing: apt-get install linux-perf")
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "portcullis",
                    "--example", "bench_fixture", "--example", "bare_pingora"], cwd=ROOT, check=True)
    binary = args.binary or os.path.join(ROOT, "target/release/portcullis")
    work = tempfile.mkdtemp(prefix="portcullis-profile-")
    children = []
    try:
        pid, url, extra = start_case(args.case, binary, work, children)
        wrk = ["wrk", "-t1", "-c64"]
        subprocess.run(wrk + ["-d2s", url] + extra, capture_output=True, check=True)  # warm-up
        load = subprocess.Popen(wrk + [f"-d{args.duration + 2}s", url] + extra,
                                stdout=subprocess.PIPE, text=True)
        time.sleep(1)
        data = os.path.join(work, "perf.data")
        cpu_before = proc_cpu_seconds(pid)
        subprocess.run(["perf", "record", "-F", "2999", "--call-graph", "dwarf,16384", "-p", str(pid),
                        "-o", data, "--", "sleep", str(args.duration)], capture_output=True, check=True)
        cpu = proc_cpu_seconds(pid) - cpu_before
        report = load.communicate()[0]
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", report).group(1))
        script = subprocess.run(["perf", "script", "-i", data], capture_output=True, text=True).stdout
    finally:
        stop_children(children)
    us_per_request = cpu * 1e6 / (rps * args.duration)
    stacks = stacks_of(script)
    owners, frames = attribute(stacks)
    total = max(len(stacks), 1)
    print(f"case ({args.case}): {rps:.0f} req/s under perf, {us_per_request:.1f} µs CPU per request, "
          f"{len(stacks)} samples")
    print("\n| owner | share | µs per request |\n|---|---|---|")
    for owner, count in owners.most_common():
        print(f"| {owner} | {100 * count / total:.1f}% | {us_per_request * count / total:.2f} |")
    if frames:
        print("\nInnermost frames of Portcullis's own code (µs per request):")
        for name, count in frames.most_common(args.top):
            print(f"{us_per_request * count / total:6.2f}  {name}")


if __name__ == "__main__":
    main()
