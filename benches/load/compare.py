#!/usr/bin/env python3
"""Portcullis against another build of itself: the hot-path cost of a change, measured.

Runs the harness's cases (c) passthrough, (d) full pipeline with a warm token and (e) full
pipeline verifying every token, each against this tree's release binary and a baseline binary
(e.g. the previous commit's), alternating the two in every round so that both see the same
machine. Reports, per case, the median of per-round ratios new/baseline of gateway CPU per
request (the number that matters: it does not depend on the load generator's share of the
machine) and of throughput, with the spread over rounds.

Build a baseline:   git worktree add /tmp/base HEAD~1 &&
                    CARGO_TARGET_DIR=/tmp/base-target cargo build --release --manifest-path /tmp/base/Cargo.toml
Usage:   benches/load/compare.py --baseline /tmp/base-target/release/portcullis [--rounds 6] [--duration 5]
         [--candidate OTHER_BINARY]   (default: this tree's release build)
"""
import argparse, os, statistics, subprocess, sys, tempfile, shutil, time

sys.path.insert(0, os.path.dirname(__file__))
from harness import (ROOT, LUA, free_port, wait_port, ensure_tools, gateway_config, run_wrk,
                     proc_cpu_seconds, start_fixture, stop_children)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--baseline", required=True, help="the portcullis binary to compare against")
    parser.add_argument("--candidate", help="the portcullis binary to measure (default: this tree's release build)")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--duration", type=float, default=5)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    args = parser.parse_args()
    ensure_tools()
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "portcullis", "--example", "bench_fixture"],
                   cwd=ROOT, check=True)
    binaries = {"new": args.candidate or os.path.join(ROOT, "target/release/portcullis"),
                "baseline": args.baseline}
    work = tempfile.mkdtemp(prefix="portcullis-compare-")
    children = []
    try:
        fixture, warm = start_fixture(work, children)
        unique_lua = os.path.join(work, "unique.lua")
        with open(LUA) as src, open(unique_lua, "w") as dst:
            dst.write(f'tokens_file = "{work}/unique.tokens"\n' + src.read())
        gateways = {}
        for build, binary in binaries.items():
            for name, cache in [("cached", 10000), ("nocache", 0)]:
                port, tls_port = free_port(), free_port()
                path = os.path.join(work, f"{build}-{name}.yaml")
                with open(path, "w") as f:
                    f.write(gateway_config(port, tls_port, fixture, work, 1, cache))
                proc = subprocess.Popen([binary, "run", "-c", path],
                                        stderr=open(os.path.join(work, f"{build}-{name}.log"), "w"))
                children.append(proc)
                wait_port(port)
                gateways[(build, name)] = (proc, port)
        cases = {
            "c": ("passthrough", "cached", "/open/orders/1", {}),
            "d": ("full pipeline, warm token", "cached", "/orders/1",
                  {"headers": [f"Authorization: Bearer {warm}"]}),
            "e": ("full pipeline, verify every request", "nocache", "/orders/1", {"script": unique_lua}),
        }
        results = {(key, build): [] for key in cases for build in binaries}
        for round_index in range(args.rounds):
            # Alternate which build goes first, so neither always meets the warmer machine.
            order = list(binaries) if round_index % 2 == 0 else list(reversed(list(binaries)))
            for key, (label, gateway, path, extra) in cases.items():
                for build in order:
                    proc, port = gateways[(build, gateway)]
                    cpu0, t0 = proc_cpu_seconds(proc.pid), time.time()
                    r = run_wrk(f"http://127.0.0.1:{port}{path}", args, **extra)
                    r["cpu_us"] = (proc_cpu_seconds(proc.pid) - cpu0) / (time.time() - t0) / r["rps"] * 1e6
                    results[(key, build)].append(r)
                    print(f"round {round_index + 1} ({key}) {build}: {r['rps']:.0f} req/s, "
                          f"{r['cpu_us']:.1f} µs CPU/request, errors {r['errors']}", flush=True)
        print()
        print(f"{args.rounds} alternating rounds of {args.duration:g} s, {args.connections} connections, "
              f"one gateway thread; baseline {args.baseline}")
        print()
        print("| case | CPU µs/request new | baseline | new/baseline CPU per request (median, rounds) "
              "| new/baseline req/s (median, rounds) | errors |")
        print("|---|---|---|---|---|---|")
        for key, (label, *_rest) in cases.items():
            new, base = results[(key, "new")], results[(key, "baseline")]
            cpu = sorted(n["cpu_us"] / b["cpu_us"] for n, b in zip(new, base))
            rps = sorted(n["rps"] / b["rps"] for n, b in zip(new, base))
            errors = sum(r["errors"] for r in new + base)
            print(f"| ({key}) {label} | {statistics.median(r['cpu_us'] for r in new):.1f} | "
                  f"{statistics.median(r['cpu_us'] for r in base):.1f} | "
                  f"{statistics.median(cpu):.3f} ({cpu[0]:.3f}-{cpu[-1]:.3f}) | "
                  f"{statistics.median(rps):.3f} ({rps[0]:.3f}-{rps[-1]:.3f}) | {errors} |")
    finally:
        stop_children(children)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
