"""A log-bucketed latency histogram in the manner of HdrHistogram.

Values are recorded in nanoseconds as integers. Below 128 ns every value has its own bucket;
above, each power of two is split into 64 equal buckets, so a bucket is never wider than
1/64 of its lower bound and its midpoint is within 1/128 (0.78%) of any value in it. Recording
is a few integer operations and one list increment; memory is about 2,000 counters for
anything up to an hour.
"""

from __future__ import annotations

from typing import Final

__all__ = ["LatencyHistogram"]

_SUB_BITS: Final = 7  # 128 exact buckets, then 64 per power of two
_EXACT: Final = 1 << _SUB_BITS
_HALF: Final = _EXACT >> 1
_MAX_NS: Final = 3_600 * 10**9  # an hour; longer latencies are clamped (max stays exact)


def _index(ns: int) -> int:
    if ns < _EXACT:
        return ns
    shift = ns.bit_length() - _SUB_BITS
    return _EXACT + (shift - 1) * _HALF + ((ns >> shift) - _HALF)


def _bounds(index: int) -> tuple[int, int]:
    """The values ``[low, high)`` of a bucket."""
    if index < _EXACT:
        return index, index + 1
    shift, sub = divmod(index - _EXACT, _HALF)
    shift += 1
    low = (sub + _HALF) << shift
    return low, low + (1 << shift)


class LatencyHistogram:
    """Counts of latencies in log-spaced buckets, for percentiles within 0.8%.

    Example:
        >>> h = LatencyHistogram()
        >>> for ms in (1, 2, 3, 4, 100):
        ...     h.record(ms / 1000)
        >>> round(h.percentile(50) * 1000, 1), h.max * 1000
        (3.0, 100.0)
    """

    __slots__ = ("_counts", "_max_ns", "_min_ns", "_sum_ns", "count")

    def __init__(self) -> None:
        self._counts = [0] * (_index(_MAX_NS) + 1)
        self.count = 0
        self._sum_ns = 0
        self._min_ns = _MAX_NS
        self._max_ns = 0

    def record(self, seconds: float) -> None:
        """Add one latency (negative values count as 0; beyond an hour as an hour)."""
        ns = int(seconds * 1e9)
        if ns < 0:
            ns = 0
        elif ns > _MAX_NS:
            ns = _MAX_NS
        self.record_ns(ns)

    def record_ns(self, ns: int) -> None:
        """Add one latency given in whole nanoseconds (0 to an hour)."""
        self._counts[_index(ns)] += 1
        self.count += 1
        self._sum_ns += ns
        if ns > self._max_ns:
            self._max_ns = ns
        if ns < self._min_ns:
            self._min_ns = ns

    def merge(self, other: LatencyHistogram) -> None:
        """Add every value of ``other`` to this histogram."""
        for i, c in enumerate(other._counts):
            if c:
                self._counts[i] += c
        self.count += other.count
        self._sum_ns += other._sum_ns
        self._max_ns = max(self._max_ns, other._max_ns)
        self._min_ns = min(self._min_ns, other._min_ns)

    @property
    def max(self) -> float:
        """Largest value recorded, in seconds (exact; 0 when empty)."""
        return self._max_ns / 1e9

    @property
    def min(self) -> float:
        """Smallest value recorded, in seconds (exact; 0 when empty)."""
        return self._min_ns / 1e9 if self.count else 0.0

    @property
    def mean(self) -> float:
        """Mean of the values recorded, in seconds (exact; 0 when empty)."""
        return self._sum_ns / self.count / 1e9 if self.count else 0.0

    def percentile(self, p: float) -> float:
        """The value below or at which ``p`` percent of the values lie, in seconds.

        That is the smallest recorded value ``v`` with at least ``ceil(p/100 * count)`` values
        ``<= v`` (numpy's ``inverted_cdf``), reported as its bucket's midpoint, clamped to
        the exact minimum and maximum.

        Raises:
            ValueError: ``p`` is not within 0 to 100, or nothing was recorded.
        """
        if not 0 <= p <= 100:
            raise ValueError(f"percentile {p!r} is not within 0 and 100")
        if not self.count:
            raise ValueError("no latency was recorded")
        rank = max(1, -(-int(p * self.count * 1_000_000) // 100_000_000))
        seen = 0
        for i, c in enumerate(self._counts):
            seen += c
            if seen >= rank:
                low, high = _bounds(i)
                mid = low if high - low == 1 else (low + high - 1) / 2
                return min(max(mid, self._min_ns), self._max_ns) / 1e9
        return self.max  # pragma: no cover - rank <= count always lands above

    def summary_ms(self) -> dict[str, float]:
        """``p50``, ``p90``, ``p99``, ``max``, ``mean``, ``min`` in milliseconds (0s when empty)."""
        if not self.count:
            return dict.fromkeys(("p50", "p90", "p99", "max", "mean", "min"), 0.0)
        return {
            "p50": self.percentile(50) * 1e3,
            "p90": self.percentile(90) * 1e3,
            "p99": self.percentile(99) * 1e3,
            "max": self.max * 1e3,
            "mean": self.mean * 1e3,
            "min": self.min * 1e3,
        }
