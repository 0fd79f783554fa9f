"""Run every benchmark and write `bench/results/SUMMARY.md` (the table the README shows).

    python -m bench.run_all            # full (`make bench`, ~15 min on 2 cores)
    python -m bench.run_all --quick    # smoke (`make bench-quick`)

Our benchmarks (run_overhead, throughput, open_streams, local_model) run in this process
one after another; the retrieval and code-interpreter benchmarks, owned elsewhere, run as
subprocesses when their files exist, with `--quick` passed through. A benchmark that fails
is reported as failed in the summary; the others still run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from bench.common import RESULTS, ROOT, fmt, machine, machine_cpu, table

OURS = ["run_overhead", "throughput", "open_streams", "local_model", "limits"]
# Other engineers' scripts (issue 7 items 4 and 5), run if present, in this order.
THEIRS = ["retrieval_eval.py", "retrieval_speed.py", "code_interpreter.py", "import_speed.py"]
THEIR_TIMEOUT = 900


def background_load(seconds: float = 2.0) -> float:
    """Fraction of the machine's CPU busy before we start (other work on a shared box)."""
    a = machine_cpu()
    time.sleep(seconds)
    b = machine_cpu()
    return (b[0] - a[0]) / max(b[1] - a[1], 1.0)


def _run_ours(name: str, quick: bool) -> tuple[dict[str, Any] | None, float, str | None]:
    import importlib

    t0 = time.monotonic()
    try:
        module = importlib.import_module(f"bench.{name}")
        result = module.main(["--quick"] if quick else [])
        return result, time.monotonic() - t0, None
    except Exception:
        return None, time.monotonic() - t0, traceback.format_exc(limit=5)


def _run_theirs(script: str, quick: bool) -> tuple[int | None, float, str]:
    t0 = time.monotonic()
    path = ROOT / "bench" / script
    # Pass --quick through only to scripts that take it (retrieval_eval has no smoke mode).
    takes_quick = '"--quick"' in path.read_text()
    cmd = [sys.executable, str(path), *(["--quick"] if quick and takes_quick else [])]
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=THEIR_TIMEOUT)
    except subprocess.TimeoutExpired:
        return None, time.monotonic() - t0, f"timed out after {THEIR_TIMEOUT} s"
    print(proc.stdout[-4000:])
    if proc.returncode != 0:
        print(proc.stderr[-2000:])
    tail = (proc.stdout if proc.returncode == 0 else proc.stderr).strip().splitlines()[-1:] or [""]
    return proc.returncode, time.monotonic() - t0, tail[0]


def _ms(st: dict[str, Any], key: str) -> str:
    return fmt(1000 * st[key], 1) if st.get("n") else "-"


def summary_rows(results: dict[str, Any]) -> list[list[str]]:
    rows: list[list[str]] = []
    ok = lambda met: "met" if met else "**missed**"  # noqa: E731
    ro = results.get("run_overhead")
    if ro:
        s, t = ro["samples"], ro["targets"]
        from bench.common import summary

        b = summary(s["b_minus_a_minus_sleep"])
        c = summary(s["c_ttft_minus_a_ttft"])
        a = summary(s["a_total"])
        sleep = summary(s["b_poll_sleep"])
        rows += [
            [
                "1 Run overhead",
                "upstream chat completion direct (a), total",
                f"{_ms(a, 'median')} ms",
                f"{_ms(a, 'p99')} ms",
                "-",
                "reference",
            ],
            [
                "",
                "run (b) added beyond poll sleep: (b) − (a) − sleep",
                f"{_ms(b, 'median')} ms",
                f"{_ms(b, 'p99')} ms",
                "≤ 10 ms p50",
                ok(t["b_met"]),
            ],
            [
                "",
                "of (b): SDK poll sleep (`openai-poll-after-ms`)",
                f"{_ms(sleep, 'median')} ms",
                f"{_ms(sleep, 'p99')} ms",
                "-",
                "-",
            ],
            [
                "",
                "stream (c) added time to first token",
                f"{_ms(c, 'median')} ms",
                f"{_ms(c, 'p99')} ms",
                "≤ 5 ms p50",
                ok(t["c_met"]),
            ],
        ]
        ka = ro["keepalive"]["latency"]
        rows.append(
            [
                "",
                "keep-alive GET /v1/assistants ×200, one connection (Nagle check)",
                f"{_ms(ka, 'median')} ms",
                f"{_ms(ka, 'p99')} ms",
                "≪ 40 ms",
                ok(ka["median"] < 0.035),
            ]
        )
    tp = results.get("throughput")
    if tp:
        first = True
        for db, levels in tp["results"].items():
            for r in levels:
                target = "≥ 200 runs/s" if (db == "sqlite" and r["concurrency"] == 64) else "-"
                verdict = ok(r["runs_per_second"] >= 200) if target != "-" else "-"
                w = r["windows"]
                rows.append(
                    [
                        "2 Throughput" if first else "",
                        f"{db}, concurrency {r['concurrency']}: runs/s (1-s windows min–max)",
                        f"{fmt(r['runs_per_second'], 1)} ({fmt(w.get('min'), 0)}–{fmt(w.get('max'), 0)})",
                        f"latency p99 {_ms(r['latency'], 'p99')} ms",
                        target,
                        verdict,
                    ]
                )
                first = False
    os_ = results.get("open_streams")
    if os_:
        st, ct = os_["token_delay_steady"], os_["control_delay_steady"]
        rows += [
            [
                "3 Open streams",
                f"{os_['streams']} SSE streams: extra server RSS total (per stream)",
                f"{fmt(os_['extra_rss_mb'], 1)} MB ({fmt(os_['extra_rss_kb_per_stream'], 0)} kB)",
                "-",
                "≤ 100 MB",
                ok(os_["targets"]["met"]),
            ],
            [
                "",
                "token delay through assistantd, all streams open",
                f"{_ms(st, 'median')} ms",
                f"{_ms(st, 'p99')} ms",
                "-",
                "-",
            ],
            [
                "",
                "token delay straight from upstream (control)",
                f"{_ms(ct, 'median')} ms",
                f"{_ms(ct, 'p99')} ms",
                "-",
                "-",
            ],
        ]
    lm = results.get("local_model")
    if lm:
        for i, r in enumerate(lm["runs"]):
            rows.append(
                [
                    "6 Local model" if i == 0 else "",
                    f"tokens/s through assistantd / direct, {r['threads']} thread(s)",
                    f"{fmt(r['served_tokens_per_s']['median'], 1)} / {fmt(r['direct_tokens_per_s']['median'], 1)}"
                    f" = {fmt(100 * r['ratio']['median'], 1)}%",
                    f"min {fmt(100 * r['ratio']['min'], 1)}%",
                    "≥ 95%",
                    ok(r["targets"]["met"]),
                ]
            )
    return rows


def write_summary(
    results: dict[str, Any],
    failures: dict[str, str],
    others: list[list[str]],
    quick: bool,
    load: float,
    durations: dict[str, float],
) -> Path:
    m = machine()
    lines = [
        "# assistantd benchmarks",
        "",
        f"Taken {m['date']} on {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB RAM, "
        f"Python {m['python']}, Linux {m['kernel']}; "
        f"{'**quick (smoke) mode — not for publishing**' if quick else 'full mode'}. "
        f"Machine CPU busy before the run (other work on the box): {100 * load:.0f}%.",
        "Client, server, upstream and database share these cores; every comparison runs its "
        "sides in the same loop. Reproduce with `make bench` (details: `bench/results/*.json`, plots `*.png`).",
        "",
        table(
            ["benchmark", "measure", "p50 / value", "p99 / spread", "target", "verdict"],
            summary_rows(results),
        ),
    ]
    if others:
        lines += [
            "",
            "Other benchmarks (retrieval, code interpreter; their own tables are in their JSON/PNG):",
            "",
            table(["script", "exit", "seconds", "last line"], others),
        ]
    if failures:
        lines += ["", "Failed:", ""] + [
            f"- `{k}`: `{v.strip().splitlines()[-1]}`" for k, v in failures.items()
        ]
    lines += ["", "Durations: " + ", ".join(f"{k} {v:.0f} s" for k, v in durations.items()), ""]
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "SUMMARY.md"
    path.write_text("\n".join(lines))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke versions of every benchmark")
    parser.add_argument("--only", default=None, help="comma-separated subset of " + ",".join(OURS))
    args = parser.parse_args(argv)
    load = background_load()
    print(f"machine CPU busy before start: {100 * load:.0f}%", flush=True)
    results: dict[str, Any] = {}
    failures: dict[str, str] = {}
    durations: dict[str, float] = {}
    for name in args.only.split(",") if args.only else OURS:
        print(f"\n=== {name} {'(quick)' if args.quick else ''} ===", flush=True)
        result, seconds, error = _run_ours(name, args.quick)
        durations[name] = seconds
        if error is not None:
            print(error)
            failures[name] = error
        else:
            results[name] = result
    others: list[list[str]] = []
    if not args.only:
        for script in THEIRS:
            if not (ROOT / "bench" / script).exists():
                continue
            print(f"\n=== {script} {'--quick' if args.quick else ''} ===", flush=True)
            code, seconds, last = _run_theirs(script, args.quick)
            durations[script] = seconds
            others.append([script, str(code), f"{seconds:.0f}", last[:100]])
            if code != 0:
                failures[script] = f"exit {code}: {last}"
    path = write_summary(results, failures, others, args.quick, load, durations)
    (RESULTS / ("run_all_quick.json" if args.quick else "run_all.json")).write_text(
        json.dumps(
            {"durations": durations, "failures": failures, "background_load": load}, indent=2
        )
        + "\n"
    )
    print("\n" + path.read_text())
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
