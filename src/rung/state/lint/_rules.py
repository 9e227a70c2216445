"""The statefulness traps `rung lint` knows, each with the rung API that replaces it.

RUNG1xx state kept in the process, RUNG2xx state kept on the local disk, RUNG3xx timers
and schedulers bound to one instance. RUNG000 is a file that could not be checked: the
message says why.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    name: str
    summary: str
    fix: str


RULES = {
    r.id: r
    for r in [
        Rule("RUNG000", "not-checked",
             "The file could not be checked: a syntax error, bytes that do not decode, a null "
             "byte, nesting deeper than Python's parser allows, or a size over the limit.",
             "Fix what the message names; leave generated modules out of the PATHs you lint."),
        Rule("RUNG101", "module-state-mutated",
             "A module-level mutable object is changed inside a function: each process has "
             "its own copy, so instances disagree and a restart loses it.",
             "Keep the state in PostgreSQL (rung.Database) or Redis; derived data in rung.Cache."),
        Rule("RUNG102", "global-rebound",
             "A function rebinds a module global: the value lives in one process only.",
             "Keep the state in PostgreSQL (rung.Database) or Redis; derived data in rung.Cache."),
        Rule("RUNG103", "memory-session-store",
             "Sessions are kept in process memory: a user's next request on another "
             "instance has no session.",
             "Use rung.SessionMiddleware: sessions in Redis, behind a signed cookie."),
        Rule("RUNG104", "process-cache",
             "A cache lives in process memory: each instance fills its own and no "
             "invalidation reaches the others.",
             "Use rung.Cache (Redis, leases, invalidation after commit); keep functools "
             "caches for pure functions of their arguments."),
        Rule("RUNG105", "per-process-secret",
             "A secret is generated when the process starts (secrets.token_*, os.urandom, "
             "get_random_secret_key, Fernet.generate_key): another instance rejects what "
             "this one signed or encrypted, and a restart logs everyone out.",
             "Read the secret from the environment or a secret store, the same on every "
             "instance; rung.SessionMiddleware takes it as secret_key."),
        Rule("RUNG106", "in-process-backend",
             "A backend that keeps its data in this process: a rate limiter on memory "
             "storage, Flask-Caching's SimpleCache, an in-memory SQLite database, a "
             "Socket.IO server with no message queue. Each instance counts, caches or "
             "broadcasts on its own.",
             "Point it at Redis (a storage_uri, a message_queue, a cache URL) or PostgreSQL; "
             "derived data in rung.Cache."),
        Rule("RUNG201", "local-file-write",
             "A local file is written at run time: other instances cannot read it and a "
             "redeploy loses it.",
             "Keep state in PostgreSQL, files in object storage, cached data in rung.Cache."),
        Rule("RUNG202", "local-disk-store",
             "A database or cache on the local disk (shelve, dbm, sqlite file, diskcache, "
             "joblib.Memory, pickle to a file) is per instance.",
             "Keep state in PostgreSQL (rung.Database), cached data in rung.Cache."),
        Rule("RUNG301", "thread-timer",
             "threading.Timer runs in one instance: with N instances the work runs N times, "
             "and not at all while that instance is down.",
             "Use rung.Singleton(...).every(seconds): one run per tick across instances."),
        Rule("RUNG302", "sched-scheduler",
             "A sched.scheduler runs in one instance: N instances, N runs.",
             "Use rung.Singleton(...).every(seconds): one run per tick across instances."),
        Rule("RUNG303", "in-process-scheduler",
             "An in-process scheduler (APScheduler, schedule, repeat_every) runs its jobs in "
             "every instance.",
             "Use rung.Singleton(...).every(seconds): one run per tick across instances."),
        Rule("RUNG304", "background-loop",
             "A periodic loop is started as a background task or thread: every instance "
             "runs it, and it dies with its instance.",
             "Use rung.Singleton(...).every(seconds), or rung.Queue + rung.Drain for work "
             "that must not be lost."),
    ]
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Finding:
    path: str
    line: int
    col: int  # 1-based
    rule: str
    message: str
    via: tuple[str, ...] = ()  # the calls from an entry point to the function it is in
    safe_when: str | None = None  # the setting that makes it safe, when one does

    @property
    def fix(self) -> str:
        return RULES[self.rule].fix
