"""Shared helpers for the benchmarks: machine description, medians, peak RSS, result files."""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).parent / "results"


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (platform.processor() elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    """What the figures were measured on, including the load from other processes right now."""
    import torch

    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "platform": platform.platform(),
        "loadavg_start": list(os.getloadavg()),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def finish(info: dict[str, Any]) -> dict[str, Any]:
    """Add the load average at the end of a run (other sessions share this machine)."""
    info["loadavg_end"] = list(os.getloadavg())
    return info


def comma_list(text: str) -> list[str]:
    """A command-line list: 'a,b' -> ['a', 'b'] (empty items dropped)."""
    return [x for x in text.split(",") if x]


def comma_ints(text: str) -> list[int]:
    """A command-line list of integers: '64,256' -> [64, 256]."""
    return [int(x) for x in comma_list(text)]


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def rotated(names: list[str], r: int) -> list[str]:
    """Run r's order: `names` rotated by r, so each goes first in turn under the same load."""
    shift = r % len(names)
    return names[shift:] + names[:shift]


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (ru_maxrss: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)


def hwm_mib() -> float:
    """Peak resident set size of this process image (VmHWM), which, unlike ru_maxrss, does not
    carry over the peak of the process that forked it before exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError("no VmHWM in /proc/self/status")


def rss_mib(pid: int | None = None) -> float:
    """Current resident set size of a process (default: this one), from /proc."""
    path = Path(f"/proc/{pid or os.getpid()}/status")
    for line in path.read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError(f"no VmRSS in {path}")


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join("" if v is None else str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def machine_line(m: dict[str, Any]) -> str:
    return (
        f"{m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB; Python {m['python']}, "
        f"torch {m['torch']} ({m['torch_threads']} intra-op threads); load average "
        f"{m['loadavg_start'][0]:.2f} at start, {m.get('loadavg_end', [0])[0]:.2f} at end."
    )


def write(name: str, results: dict[str, Any], markdown: str, out: Path) -> None:
    """`<out>/<name>.json` and `<out>/<name>.md`."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / f"{name}.md").write_text(markdown)


def report(title: str, m: dict[str, Any], method: str, head: Sequence[str], rows: list) -> str:
    """A one-table results page: title, the machine, how it was measured, the table."""
    return "\n".join([f"# {title}", "", machine_line(m), "", method, "", table(head, rows), ""])
