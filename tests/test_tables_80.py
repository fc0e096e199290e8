"""Tables with architecture strings stay readable at 80 columns: the row holds a short key, the
strings are listed whole below the table (status overview and detail, selection, report)."""

from __future__ import annotations

import io

import pandas as pd
from rich.console import Console

from gmnas_cli.report.listing import wrap_arch
from gmnas_cli.report.render import print_table
from gmnas_cli.report.table import Table
from gmnas_cli.stages import select, status

NB201 = "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|nor_conv_1x1~0|skip_connect~1|nor_conv_1x1~2|"
DARTS = ("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('skip_connect', 0), ('sep_conv_3x3', 1), "
         "('skip_connect', 0), ('dil_conv_3x3', 2), ('skip_connect', 0), ('sep_conv_5x5', 1)], normal_concat=[2, 3, 4, "
         "5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1)], "
         "reduce_concat=[2, 3, 4, 5])")


def _render(draw) -> list[str]:
    console = Console(file=io.StringIO(), width=80, color_system=None)
    draw(console)
    return console.file.getvalue().splitlines()


def _check(lines: list[str], archs: list[str]) -> None:
    assert all(len(line) <= 80 for line in lines), max(lines, key=len)
    table = [ln for ln in lines if ln[:1] in "┃│┏┡└┗"]
    assert table and not any("nor_conv" in ln or "sep_conv" in ln for ln in table)  # no fragments in a row
    text = "".join(ln.strip() for ln in lines)
    for arch in archs:  # listed below, whole: the wrapped lines joined give the string back
        assert arch.replace(" ", "") in text.replace(" ", "")


def _status_row(name: str, arch: str) -> dict:
    stages = {s: {"state": "done", "detail": "", "seconds": 12.0} for s in status.STAGE_ORDER}
    stages["retrain"] = {"state": "running", "detail": "epoch 3 of 600", "seconds": None}
    leaves = [{"index": k, "node": 3 + k, "arch": a, "val_loss": 2.3, "val_acc": 0.1, "selected": k == 1,
               "done": True} for k, a in enumerate([NB201, arch])]
    return {"name": name, "root": f"outputs/{name}", "stages": stages, "leaves": 2, "leaf_results": leaves,
            "selected_leaf": 4, "selected_arch": arch, "test_error": 6.12, "benchmark": None, "seconds": 3000.0}


def test_status_tables_at_80_columns():
    rows = [_status_row("nb201-darts-gm-digits-s0", NB201), _status_row("darts-snas-gm-cifar10-s1", DARTS)]

    def overview(c: Console) -> None:
        table, below = status.overview(rows, "outputs")
        c.print(table)
        status.print_listing(c, below)

    lines = _render(overview)
    _check(lines, [NB201, DARTS])
    row = next(ln for ln in lines if "nb201-darts-gm-digits-s0" in ln)
    assert "4/5 done" in row and "A1" in row  # the name whole, the key in the row
    assert any("epoch 3 of 600" in ln for ln in lines)

    def detail(c: Console) -> None:
        tables, below = status.detail(rows[1])
        for t in tables:
            c.print(t)
        status.print_listing(c, below)

    _check(_render(detail), [NB201, DARTS])


def test_selection_table_at_80_columns():
    sel = {"criterion": "val_loss", "dataset": "cifar10", "leaf": 4, "arch": DARTS, "evidence": {},
           "candidates": [{"leaf": 3, "val_loss": 2.3, "val_acc": 0.1, "arch": NB201, "benchmark": {"cifar10_test": 93.5}},
                          {"leaf": 4, "val_loss": 2.2, "val_acc": 0.2, "arch": DARTS}]}

    def draw(c: Console) -> None:
        old = select.console
        select.console = c
        try:
            select.show(sel)
        finally:
            select.console = old

    _check(_render(draw), [NB201, DARTS])


def test_report_table_at_80_columns():
    display = pd.DataFrame({"Method": ["GM + DARTS", "GM + SNAS"], "Architecture": [NB201, DARTS],
                            "Test Error (%)": ["6.12 ± 0.10", "5.90"], "Params (M)": ["3.1", "3.4"],
                            "Seeds": ["2", "1"]}).set_index("Method")
    table = Table(name="t", title="Table 4", display=display, data=display.reset_index())
    lines = _render(lambda c: print_table(table, c))
    _check(lines, [NB201, DARTS])
    assert any("GM + DARTS" in ln and "A1" in ln and "6.12" in ln for ln in lines)


def test_wrap_arch_breaks_at_joints_and_keeps_the_string():
    lines = wrap_arch(NB201, 50)
    assert "".join(lines) == NB201 and all(len(ln) <= 50 for ln in lines)
    assert all(ln.endswith("+") for ln in lines[:-1])
    assert "".join(wrap_arch(DARTS, 40)) == DARTS
