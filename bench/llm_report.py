"""The table and the plot of bench/llm.sh: one JSON object per run (policy, load) in, a
Markdown table and a PNG of TTFT p99 against offered load per policy out.

    python3 bench/llm_report.py RESULTS.json OUT.md OUT.png "COMMAND THAT MADE THEM"
"""

import json
import sys


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def ms(run, kind, quantile):
    """A latency in ms of the model's time (the wall clock times the simulator's speedup)."""
    value = run[kind][quantile]
    return "–" if value is None else f"{value * run.get('speedup', 1):,.0f}"


def queued(run):
    """Mean time a request waited in a replica's queue, ms of model time."""
    value = run.get("queue_ms_mean")
    return "–" if value is None else f"{value * run.get('speedup', 1):,.1f}"


def table(runs, command):
    capacity = runs[0]["capacity"] if runs else 0
    lines = [
        f"Pool capacity {capacity:g} req/s (completed by least_conn under overload). "
        f"Made by `{command}`.",
        "",
        "| load | req/s | policy | TTFT p50 ms | TTFT p90 ms | TTFT p99 ms | e2e p50 ms "
        "| e2e p99 ms | output tok/s | prefix hit % | queued ms/req | shed | errors "
        "| lbx CPU µs/req | decision µs |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        hit = r.get("cache_hit_rate")
        decision = r.get("decision_us")
        lines.append(
            "| {load:.0%} | {rate:g} | {policy} | {t50} | {t90} | {t99} | {e50} | {e99} "
            "| {tps:,.0f} | {hit} | {wait} | {shed} | {errors} | {cpu:.0f} | {dec} |".format(
                load=r["load"],
                rate=r["rate"],
                policy=r["policy"],
                t50=ms(r, "ttft_ms", "p50"),
                t90=ms(r, "ttft_ms", "p90"),
                t99=ms(r, "ttft_ms", "p99"),
                e50=ms(r, "e2e_ms", "p50"),
                e99=ms(r, "e2e_ms", "p99"),
                tps=r["output_tokens_per_s"] / r.get("speedup", 1),
                hit="–" if hit is None else f"{hit * 100:.1f}",
                wait=queued(r),
                shed=r["shed"],
                errors=r["errors"],
                cpu=r["lbx_cpu_us_per_request"],
                dec="–" if decision is None else f"{decision:.2f}",
            )
        )
    return "\n".join(lines) + "\n"


def plot(runs, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    policies = []
    for r in runs:
        if r["policy"] not in policies:
            policies.append(r["policy"])
    for policy in policies:
        points = sorted(
            (r["load"], r["ttft_ms"]["p99"] * r.get("speedup", 1))
            for r in runs
            if r["policy"] == policy and r["ttft_ms"]["p99"] is not None
        )
        ax.plot(
            [p[0] * 100 for p in points],
            [p[1] for p in points],
            marker="o",
            label=policy,
            linewidth=2.4 if policy == "llm_router" else 1.4,
        )
    ax.set_xlabel("offered load, % of the pool's capacity")
    ax.set_ylabel("TTFT p99, ms (model time)")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    ax.set_title("Time to first token, p99, by routing policy")
    fig.tight_layout()
    fig.savefig(path)


def main():
    results, markdown, png, command = sys.argv[1:5]
    runs = load(results)
    with open(markdown, "w") as f:
        f.write(table(runs, command))
    plot(runs, png)


if __name__ == "__main__":
    main()
