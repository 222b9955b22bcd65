"""Show a smoke test's checks: one line each, then the verdict."""

from __future__ import annotations

from slr.ui.console import out, print_error


def show_smoke(report) -> None:
    console = out()
    console.print(report.header, markup=False, highlight=False)
    for name, ok in report.checks.items():
        console.print(f"  {'ok  ' if ok else 'FAIL'} {name}", markup=False, highlight=False)
    console.print(f"{report.steps} steps in {report.seconds:.1f}s ({report.samples_per_s:,.0f} samples/s)",
                  markup=False, highlight=False)
    if report.passed:
        console.print("smoke test passed", markup=False, highlight=False)
    else:
        print_error("smoke test failed: " + ", ".join(n for n, ok in report.checks.items() if not ok))
