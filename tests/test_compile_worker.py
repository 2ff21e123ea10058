"""The warm compiler's `--times` reply: fsc's phase table, read into (phase, seconds)."""

from __future__ import annotations

from hotreload.compile_worker import parse_times

TABLE = """--------------------------------------------------------------------------------------------------------
|Phase name                          |Elapsed |Duration| WS(MB)|  GC0  |  GC1  |  GC2  |Handles|Threads|
|--------------------------------------------------------------------------------------------------------
|Import mscorlib+FSharp.Core         |  0.8961|  0.7659|    157|      8|      5|      3|     76|     16|
|Typecheck                           |  2.3085|  1.1347|    201|      1|      0|      0|     86|     16|
|>Write Metadata Header              |  2.4749|  0.0000|    224|      0|      0|      0|     89|     16|
|Write .NET Binary                   |  2.5491|  0.1241|    232|      0|      0|      0|     92|     16|
--------------------------------------------------------------------------------------------------------
|        Cache name        | hit-ratio | adds | updates | hits | misses | evictions | eviction-fails |
| typeSubsumptionCache     |   63.36 % |   85 |       0 |  147 |     85 |         0 |              0 |
"""


def test_top_level_phases_with_their_durations() -> None:
    assert parse_times(TABLE) == [("Import mscorlib+FSharp.Core", 0.7659), ("Typecheck", 1.1347),
                                  ("Write .NET Binary", 0.1241)]
