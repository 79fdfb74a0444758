"""Exit codes of `rollout run`, `rollout demo` and `rollout gate`; scripts depend on them."""

from enum import IntEnum


class ExitCode(IntEnum):
    PROMOTED = 0  # gate: pass
    ROLLED_BACK = 1  # gate: fail, a regression confirmed
    PAUSED = 2  # gate: inconclusive (not enough data, or no data)
    BAD_INPUT = 3  # bad spec, policy or usage
    INFRASTRUCTURE = 4  # Prometheus or router unreachable, or answering garbage
