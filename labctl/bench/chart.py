"""``labctl bench --chart PNG``: round-trip time by mechanism and size, host against
container. matplotlib is an optional extra (``pip install 'labctl[bench]'``)."""

from __future__ import annotations

from pathlib import Path

from labctl.bench.records import Report, human_size
from labctl.errors import UsageError

INSTALL_HINT = "--chart needs matplotlib: pip install 'labctl[bench]' (or pip install matplotlib)"


def require_matplotlib() -> None:
    """Raise UsageError (before anything runs) when matplotlib cannot be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as e:
        raise UsageError(INSTALL_HINT) from e


def write_chart(report: Report, path: str | Path) -> Path:
    """One panel per message size: median round trip per mechanism (log scale), host and
    container bars side by side, p99 as an error bar. Returns the path written."""
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    sizes = list(report.config.sizes)
    mechs = list(report.config.mechanisms)
    fig, axes = plt.subplots(1, len(sizes), figsize=(4.2 * len(sizes), 4.8), squeeze=False, sharey=False)
    colors = {"host": "#4C72B0", "container": "#DD8452"}
    width = 0.4
    for ax, size in zip(axes[0], sizes):
        for j, placement in enumerate(("host", "container")):
            xs, med, err = [], [], []
            for i, mech in enumerate(mechs):
                r = report.find(mech, placement, size)
                if r is None:
                    continue
                xs.append(i + (j - 0.5) * width)
                med.append(r.rtt_ns_median / 1000.0)
                err.append(max(0.0, (r.rtt_ns_p99 - r.rtt_ns_median) / 1000.0))
            if xs:
                ax.bar(xs, med, width, label=placement, color=colors[placement],
                       yerr=[[0.0] * len(err), err], capsize=2, error_kw={"elinewidth": 0.7})
        ax.set_yscale("log")
        ax.set_title(f"{human_size(size)} each way")
        ax.set_xticks(range(len(mechs)))
        ax.set_xticklabels(mechs, rotation=60, ha="right", fontsize=8)
        ax.grid(axis="y", which="both", alpha=0.3)
    axes[0][0].set_ylabel("round trip, median (us, log); bar: p99")
    axes[0][0].legend()
    m = report.machine
    pin = "pinned" if report.pinned_cpus else "not pinned"
    fig.suptitle(f"labctl bench: {m.cpu}, {m.cores} cores, kernel {m.kernel}, {pin}", fontsize=10)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
