"""Active failback probes: ask a pinned-away model one token, and believe only a real answer.

Public API; the implementation lives in small modules:

- ``client``: the HTTP seam (``ProbeClient``), one probe -> one ``ProbeResult``;
- ``answer``: judging a 200 body (content, model name, reasoning models), pure;
- ``budget``: the daily probe budget per provider;
- ``scheduler``: the failback pass (``FailbackProber.run_pass``) and its timer.
"""

from watcher.probe.budget import BudgetStatus, ProbeBudget
from watcher.probe.client import ProbeClient, ProbeTimeouts, parse_retry_after
from watcher.probe.scheduler import FailbackProber, PassReport, ProbeScheduler

__all__ = [
    "BudgetStatus",
    "FailbackProber",
    "PassReport",
    "ProbeBudget",
    "ProbeClient",
    "ProbeScheduler",
    "ProbeTimeouts",
    "parse_retry_after",
]
