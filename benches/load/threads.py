#!/usr/bin/env python3
"""Does Portcullis scale with its worker threads? Case (d) (full pipeline, warm token) against
gateways that differ only in `server.threads` and `server.work_stealing`, in interleaved rounds,
with each worker thread's share of the gateway's CPU (from /proc/PID/task: how evenly the
connections were spread over the threads).

Usage: benches/load/threads.py [--rounds 3] [--duration 5] [--connections 64] [--threads 1]
"""
import argparse, os, statistics, subprocess, sys, tempfile, shutil

sys.path.insert(0, os.path.dirname(__file__))
from harness import (ROOT, free_port, wait_port, ensure_tools, gateway_config, run_wrk,
                     proc_cpu_seconds, start_fixture, stop_children)


def thread_cpu(pid):
    """CPU seconds of each thread of `pid`, by thread id, with its name."""
    result = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                text = f.read()
        except FileNotFoundError:
            continue
        name = text[text.index("(") + 1:text.rindex(")")]
        fields = text.rsplit(")", 1)[1].split()
        result[tid] = (name, (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"))
    return result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    args = parser.parse_args()
    ensure_tools()
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "portcullis", "--example", "bench_fixture"],
                   cwd=ROOT, check=True)
    work = tempfile.mkdtemp(prefix="portcullis-threads-")
    children = []
    cpus = os.cpu_count()
    variants = [("1 thread", 1, False), (f"{cpus} threads, no stealing", cpus, False),
                (f"{cpus} threads, work stealing", cpus, True)]
    try:
        fixture, warm = start_fixture(work, children)
        gateways = []
        for name, threads, stealing in variants:
            port, tls_port = free_port(), free_port()
            text = gateway_config(port, tls_port, fixture, work, threads, 10000)
            text = text.replace(f"  threads: {threads}\n",
                                f"  threads: {threads}\n  work_stealing: {str(stealing).lower()}\n")
            path = os.path.join(work, f"g{len(gateways)}.yaml")
            with open(path, "w") as f:
                f.write(text)
            proc = subprocess.Popen([os.path.join(ROOT, "target/release/portcullis"), "run", "-c", path],
                                    stderr=open(path + ".log", "w"))
            children.append(proc)
            wait_port(port)
            gateways.append((name, proc, port))
        results = {name: [] for name, _, _ in gateways}
        for round_index in range(args.rounds):
            order = gateways if round_index % 2 == 0 else list(reversed(gateways))
            for name, proc, port in order:
                before, threads_before = proc_cpu_seconds(proc.pid), thread_cpu(proc.pid)
                wrk = run_wrk(f"http://127.0.0.1:{port}/orders/1", args, [f"Authorization: Bearer {warm}"])
                cpu = proc_cpu_seconds(proc.pid) - before
                after = thread_cpu(proc.pid)
                busy = sorted(((after[t][1] - threads_before.get(t, (n, 0))[1], n) for t, (n, _) in after.items()),
                              reverse=True)
                total = sum(c for c, _ in busy) or 1
                shares = [f"{n} {100 * c / total:.0f}%" for c, n in busy if c > 0.01 * total]
                requests = wrk["rps"] * args.duration
                results[name].append((wrk["rps"], 1e6 * cpu / requests, wrk["errors"]))
                print(f"round {round_index + 1} {name}: {wrk['rps']:.0f} req/s, "
                      f"{1e6 * cpu / requests:.1f} µs CPU/request, threads: {', '.join(shares)}", flush=True)
        base = statistics.median(r[0] for r in results[gateways[0][0]])
        print(f"\n{args.rounds} interleaved rounds of {args.duration:g} s, wrk -t{args.threads} "
              f"-c{args.connections}, case (d), on {cpus} CPUs\n")
        print("| gateway | req/s (median) | vs 1 thread | CPU µs/request | errors |")
        print("|---|---|---|---|---|")
        for name, _, _ in gateways:
            rps = statistics.median(r[0] for r in results[name])
            cpu = statistics.median(r[1] for r in results[name])
            errors = sum(r[2] for r in results[name])
            print(f"| {name} | {rps:.0f} | {rps / base:.2f}x | {cpu:.1f} | {errors} |")
    finally:
        stop_children(children)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
