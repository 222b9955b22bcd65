"""Show the hwinfo report: rich panels on a terminal, plain `key: value` lines otherwise."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.panel import Panel
from rich.table import Table

from slr.errors import spell_settings
from slr.ui.console import interactive, out


def _sections(report: dict[str, Any]) -> list[tuple[str, list[tuple[str, str]]]]:
    dev = report["device"]
    sections = [("Device", [("selected", dev["selected"]), ("why", dev["reason"])])]
    for g in report["gpus"]:
        sections.append(
            (
                f"GPU {g['index']}",
                [
                    ("name", g["name"]),
                    ("memory", f"{g['free_memory_gib']:.1f} GiB free of {g['total_memory_gib']:.1f} GiB"),
                    ("compute capability", g["compute_capability"]),
                    ("bfloat16", "yes" if g["bf16"] else "no"),
                ],
            )
        )
    cpu, mem, ver = report["cpu"], report["memory"], report["versions"]
    sections.append(
        (
            "Host",
            [
                ("usable CPU cores", f"{cpu['usable_cores']} (of {cpu['machine_cores']} on the machine)"),
                ("RAM", f"{mem['available_gib']:.1f} GiB available of {mem['total_gib']:.1f} GiB"),
                ("MPS", "available" if report["mps_available"] else "not available"),
            ],
        )
    )
    sections.append(
        (
            "Versions",
            [
                ("slr", report["slr_version"]),
                ("python", ver["python"]),
                ("torch", ver["torch"]),
                ("CUDA (torch build)", str(ver["cuda"] or "none")),
                ("cuDNN (torch build)", str(ver["cudnn"] or "none")),
            ],
        )
    )
    workers = report["auto_workers"]
    batch = report["auto_batch_size"]
    rows = [("--auto-workers", f"{workers['workers']}  ({workers['reason']})")]
    threads = report.get("threads")
    if threads:
        rows.append(("--threads", f"{threads['threads']}  ({spell_settings(threads['reason'])})"))
    chosen = report.get("precision")
    if chosen:
        rows.append(("--amp", f"{chosen['autocast']}  ({spell_settings(chosen['reason'])})"))
    for model, b in batch.items():
        if model == "frames":
            continue
        rows.append((f"--auto-batch-size {model}", f"{b['batch_size']}  ({b['method']}: {b['reason']})"))
    sections.append((f"Auto options (preview for {batch['frames']}-frame clips)", rows))
    probe = report.get("probe")
    if probe:
        sections.append((
            f"Probe: {probe['model']} on {probe['device']}, clips of {probe['frames']} x {probe['width']} "
            f"({probe['shape_from']})",
            [
                ("measured batch", f"{probe['measured']['batch_size']}  ({probe['measured']['reason']})"),
                ("memory rule's guess", f"{probe['rule']['batch_size']}  ({probe['rule']['reason']})"),
                ("time per step", f"{probe['seconds_per_step'] * 1000:.1f} ms at batch "
                                  f"{probe['measured']['batch_size']} ({probe['samples_per_s']:.0f} samples/s)"),
            ],
        ))
    return sections


def render_hwinfo(report: dict[str, Any]) -> None:
    console = out()
    sections = _sections(report)
    if not interactive():
        for title, rows in sections:
            console.print(f"[{title}]", markup=False)
            for key, value in rows:
                console.print(f"  {key}: {value}", markup=False)
        return
    panels = []
    for title, rows in sections:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold cyan", no_wrap=True)
        table.add_column()
        for key, value in rows:
            table.add_row(key, value)
        panels.append(Panel(table, title=title, title_align="left"))
    console.print(Group(*panels))
