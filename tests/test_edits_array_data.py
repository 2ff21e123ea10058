"""Array literal data on the real runtime (regressions found by the differential soak, `test_differential_soak.py`).

F# keeps a constant array's data in a field mapped to the image (FieldRVA) named after its line; the runtime cannot
change a field's data, so new data is a new field (AddFieldRva). CoreCLR rejects a delta that takes the module past
25 such fields (its lookup hash of the table is not maintained by updates): moved arrays must not add fields, and
data changes past the limit are refused by name instead of breaking the app.
"""

from __future__ import annotations

from typing import Any

import pytest

from hotreload.delta import MAX_DATA_FIELDS
from hotreload.metadata.schema import T
from hotreload.refusal import RefusalKind

pytestmark = pytest.mark.runtime


def _array(k: int) -> str:
    return "[| " + "; ".join(str(100 * k + i) for i in range(9)) + " |]"


def _data_fields(p: Any) -> int:
    return int(p.session.updater.baseline.row_counts[T.FieldRva])


def test_a_moved_array_literal_keeps_its_data_field(fsharp_project: Any) -> None:
    base = f"module Demo.Data\n\nlet f () = Array.sum {_array(1)}\nlet g () = 1\n"
    p = fsharp_project({"Lib.fs": base}, name="Data")
    before = _data_fields(p)
    for n in range(1, 4):  # each save moves the array: its field is named after its line
        outcome = p.save("Lib.fs", base.replace("let f", "// moved\n" * n + "let f").replace("= 1", f"= {n}"))
        assert outcome.kind in ("applied", "no-change"), (outcome.kind, outcome.message)
        assert p.call("Demo.Data.f") == sum(100 + i for i in range(9))
    assert _data_fields(p) == before  # was one more data field per save, which ran into the runtime's limit


def test_array_data_changes_past_the_runtimes_limit_are_refused(fsharp_project: Any) -> None:
    arrays = MAX_DATA_FIELDS - 3
    base = "module Demo.Data\n\n" + "".join(f"let a{k} () = Array.sum {_array(k)}\n" for k in range(arrays))
    p = fsharp_project({"Lib.fs": base}, name="Data")
    assert _data_fields(p) == arrays
    for k in range(1, 4):  # each new data adds a field: the module reaches the limit
        p.edit("Lib.fs", base.replace(_array(0), _array(1000 + k)))
        assert p.call("Demo.Data.a0") == sum(100000 + 100 * k + i for i in range(9))
    assert _data_fields(p) == MAX_DATA_FIELDS
    outcome = p.refuse("Lib.fs", base.replace(_array(0), _array(2000)))  # the runtime would reject it
    refusal = outcome.refusals[0]
    assert refusal.kind == RefusalKind.CAPABILITY and f"past {MAX_DATA_FIELDS}" in str(refusal), str(refusal)
    assert p.call("Demo.Data.a0") == sum(100300 + i for i in range(9))  # the app keeps the last applied data
    p.edit("Lib.fs", base.replace(_array(0), _array(1003)).replace("let a1 ", "let b1 () = 2\nlet a1 "))
    assert p.call("Demo.Data.b1") == 2  # and takes later edits that need no new data
