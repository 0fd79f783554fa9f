"""Local model: tokens/s of the bundled llama.cpp model through assistantd versus
llama-cpp-python called directly on the same prompt (issue 7, item 6).

`assistantd serve` runs with no `ASSISTANTD_LLM_BASE_URL`, so every model is the embedded
Gemma 3 270M (context 2048 here, as on the direct side). In one loop, alternating:

  direct:  `llama_cpp.Llama(model_path=bundled_gguf_path(), n_ctx=2048)` in this process,
           `create_completion(stream=True)` on the very prompt assistantd renders (the GGUF has
           no chat template, so llama-cpp-python's chat API would fall back to Llama-2's
           format; we render Gemma's turns with `assistantd.llm.llama_prompt`), temperature 0;
  served:  `runs.stream` (official SDK) on a thread holding the same user message,
           temperature 0, `max_completion_tokens` = the same max tokens.

Rate = (deltas − 1) / (time of last delta − time of first delta), the same on both sides
(each streamed delta is one sampled token on both). Both sides use the same CPU threads.

    python -m bench.local_model [--quick] [--max-tokens N] [--repeats R] [--threads T]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

from openai import OpenAI

from bench.common import API_KEY, Server, fmt, publish, pyplot, summary, table

NAME = "local_model"
PROMPT = "Write a long story about a lighthouse keeper who finds a message in a bottle."


def _rate(times: list[float]) -> float:
    return (
        (len(times) - 1) / (times[-1] - times[0])
        if len(times) > 1 and times[-1] > times[0]
        else float("nan")
    )


def measure(max_tokens: int, repeats: int, threads: int) -> dict[str, Any]:
    from llama_cpp import Llama

    from assistantd.llm.base import ChatMessage, ChatRequest
    from assistantd.llm.llama_cpp import bundled_gguf_path
    from assistantd.llm.llama_prompt import render_gemma, to_turns

    path = bundled_gguf_path()
    request = ChatRequest(model="local", messages=[ChatMessage(role="user", content=PROMPT)])
    prompt_text = render_gemma(to_turns(request, describe_tools=False), "<bos>")
    env = {"ASSISTANTD_LLM_CONTEXT_SIZE": "2048", "ASSISTANTD_LLM_THREADS": str(threads)}
    direct_rates, served_rates, direct_n, served_n, served_usage = [], [], [], [], []
    direct_ttft, served_ttft = [], []
    texts: dict[str, str] = {}
    with Server(llm_base_url=None, env=env, ready_timeout=120) as server:
        llm = Llama(model_path=str(path), n_ctx=2048, n_threads=threads, verbose=False)
        prompt = llm.tokenize(prompt_text.encode("utf-8"), add_bos=False, special=True)
        client = OpenAI(base_url=server.base_url, api_key=API_KEY, max_retries=0, timeout=600)
        assistant = client.beta.assistants.create(model="gemma-3-270m", name="bench")

        def direct() -> tuple[list[float], float, str]:
            t0 = time.perf_counter()
            times, parts = [], []
            for chunk in llm.create_completion(
                prompt, temperature=0.0, max_tokens=max_tokens, stream=True
            ):
                content = chunk["choices"][0]["text"]  # type: ignore[index]
                if content:
                    times.append(time.perf_counter())
                    parts.append(content)
            return times, times[0] - t0, "".join(parts)

        def served() -> tuple[list[float], float, str, int]:
            thread = client.beta.threads.create(messages=[{"role": "user", "content": PROMPT}])
            t0 = time.perf_counter()
            times, parts = [], []
            with client.beta.threads.runs.stream(
                thread_id=thread.id,
                assistant_id=assistant.id,
                temperature=0.0,
                max_completion_tokens=max_tokens,
            ) as s:
                for event in s:
                    if event.event == "thread.message.delta":
                        for block in event.data.delta.content or []:
                            if block.type == "text" and block.text and block.text.value:
                                times.append(time.perf_counter())
                                parts.append(block.text.value)
                run = s.get_final_run()
            usage = run.usage.completion_tokens if run.usage else -1
            return times, times[0] - t0, "".join(parts), usage

        # Warm-up: loads the model in the server, fills caches on both sides.
        direct()
        served()
        for i in range(repeats):
            for side in ("direct", "served") if i % 2 == 0 else ("served", "direct"):
                if side == "direct":
                    times, ttft, text = direct()
                    direct_rates.append(_rate(times))
                    direct_n.append(len(times))
                    direct_ttft.append(ttft)
                    texts["direct"] = text
                else:
                    times, ttft, text, usage = served()
                    served_rates.append(_rate(times))
                    served_n.append(len(times))
                    served_ttft.append(ttft)
                    served_usage.append(usage)
                    texts["served"] = text
        llm.close()
    ratios = [s / d for s, d in zip(served_rates, direct_rates, strict=True)]
    return {
        "max_tokens": max_tokens,
        "repeats": repeats,
        "threads": threads,
        "model": str(path.name),
        "direct_tokens_per_s": summary(direct_rates),
        "served_tokens_per_s": summary(served_rates),
        "ratio": summary(ratios),
        "prompt_tokens": len(prompt),
        "direct_deltas": direct_n,
        "served_deltas": served_n,
        "served_usage_completion_tokens": served_usage,
        "direct_ttft_s": summary(direct_ttft),
        "served_ttft_s": summary(served_ttft),
        "same_text": texts.get("direct") == texts.get("served"),
        "direct_text_head": texts.get("direct", "")[:200],
        "served_text_head": texts.get("served", "")[:200],
    }


def report(r: dict[str, Any]) -> str:
    def row(label: str, st: dict[str, float], digits: int = 1, scale: float = 1.0) -> list[str]:
        return [
            label,
            fmt(scale * st["median"], digits),
            fmt(scale * st["p90"], digits),
            f"{fmt(scale * st['min'], digits)} – {fmt(scale * st['max'], digits)}",
        ]

    out = [
        table(
            [
                f"{r['model']}, {r['max_tokens']} tokens, {r['threads']} threads, n={r['repeats']}",
                "median",
                "p90",
                "min – max",
            ],
            [
                row("direct llama-cpp-python, tokens/s", r["direct_tokens_per_s"]),
                row("through assistantd (streamed run), tokens/s", r["served_tokens_per_s"]),
                row("ratio served / direct (paired), %", r["ratio"], 1, 100.0),
                row("direct, time to first token, ms", r["direct_ttft_s"], 1, 1000.0),
                row("served, time to first token, ms", r["served_ttft_s"], 1, 1000.0),
            ],
        )
    ]
    out.append(
        f"\ndeltas per answer: direct {r['direct_deltas']}, served {r['served_deltas']} "
        f"(run usage.completion_tokens {r['served_usage_completion_tokens']}); "
        f"identical text: {r['same_text']}"
    )
    ratio = r["ratio"]["median"]
    r["targets"] = {"ratio": ratio, "target": 0.95, "met": ratio >= 0.95}
    out.append(
        f"target ≥ 95% of direct: {fmt(100 * ratio, 1)}% → {'MET' if ratio >= 0.95 else 'MISSED'}"
    )
    return "\n".join(out)


def plot(runs: list[dict[str, Any]], path: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, len(runs), figsize=(6.5 * len(runs), 4.5), squeeze=False)
    for ax, r in zip(axes[0], runs, strict=True):
        _bars(ax, r)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _bars(ax: Any, r: dict[str, Any]) -> None:
    labels = ["llama-cpp-python\ndirect", "through assistantd\n(streamed run)"]
    sts = [r["direct_tokens_per_s"], r["served_tokens_per_s"]]
    ax.bar(labels, [s["median"] for s in sts], color=["tab:gray", "tab:blue"])
    ax.errorbar(
        labels,
        [s["median"] for s in sts],
        yerr=[[s["median"] - s["min"] for s in sts], [s["max"] - s["median"] for s in sts]],
        fmt="none",
        color="k",
        capsize=5,
    )
    ax.axhline(
        0.95 * sts[0]["median"], color="tab:red", ls="--", lw=1, label="95% of direct (target)"
    )
    ax.set_ylabel("tokens/s (bar median, whiskers min–max)")
    ax.set_title(f"{r['model']}: {r['max_tokens']} tokens, {r['threads']} threads")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: one pair after warm-up (~40 s)"
    )
    parser.add_argument(
        "--max-tokens",
        type=int,
        default=None,
        help="default 256 (the API rejects max_completion_tokens < 256)",
    )
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument(
        "--threads",
        default=None,
        help="comma-separated CPU thread counts, each measured on both sides "
        f"(default 1; add {os.cpu_count()} to see all cores, much slower on a "
        "busy box: llama.cpp threads spin while waiting for each other)",
    )
    args = parser.parse_args(argv)
    threads = [int(t) for t in (args.threads or "1").split(",")]
    runs = []
    texts = []
    for t in dict.fromkeys(threads):
        r = measure(args.max_tokens or 256, args.repeats or (1 if args.quick else 2), t)
        texts.append(report(r))
        print(texts[-1], flush=True)
        runs.append(r)
    result: dict[str, Any] = {
        "mode": "quick" if args.quick else "full",
        "runs": runs,
        "targets": {f"threads_{r['threads']}": r["targets"] for r in runs},
    }
    suffix = "_quick" if args.quick else ""
    publish(NAME + suffix, result, "\n\n".join(texts), lambda png: plot(runs, png))
    return result


if __name__ == "__main__":
    main()
