"""Constants added to a running module (a regression found by the differential soak, `test_differential_soak.py`).

A union's `Tags` class holds one constant per case, and F#'s reflection (`%A`, a union's `ToString`) reads them.
Past 25 rows CoreCLR looks the Constant table up through a hash that applying an update does not maintain, so a
union added to a module with more constants printed as an InvalidOperationException ("Literal value was not found")
while a fresh process printed it: such an edit is refused by name; one that adds no constant is applied as ever.
"""

from __future__ import annotations

from typing import Any

import pytest

from hotreload.delta import MAX_CONSTANTS
from hotreload.metadata.schema import T
from hotreload.refusal import RefusalKind

pytestmark = pytest.mark.runtime

BASE = ("module Demo.Consts\n\n" + "".join(f"[<Literal>]\nlet K{i} = {i}\n" for i in range(MAX_CONSTANTS))
        + "type U0 =\n    | A0 of int\n    | B0\nlet show0 () = sprintf \"%A\" (A0 7)\n")
UNION = "type U1 =\n    | A1 of int\n    | B1 of string\n    | C1\nlet show1 () = sprintf \"%A\" (A1 8)\n"
RECORD = "type R1 = { X1: int }\nlet showR () = sprintf \"%A\" { X1 = 9 }\n"


def test_a_union_added_past_the_runtimes_constants_is_refused(fsharp_project: Any) -> None:
    p = fsharp_project({"Lib.fs": BASE}, name="Consts")
    assert p.session.updater.baseline.row_counts[T.Constant] > MAX_CONSTANTS
    assert p.call("Demo.Consts.show0") == "A0 7"  # a lookup: the runtime now has its hash of the table
    outcome = p.refuse("Lib.fs", BASE + UNION)  # was applied, and show1 threw where a fresh process printed A1 8
    refusal = outcome.refusals[0]
    assert refusal.kind == RefusalKind.CAPABILITY and "U1" in refusal.member, str(refusal)
    assert f"past {MAX_CONSTANTS}" in str(refusal), str(refusal)
    p.edit("Lib.fs", BASE + RECORD)  # a record adds no constant
    assert p.call("Demo.Consts.showR") == "{ X1 = 9 }"
