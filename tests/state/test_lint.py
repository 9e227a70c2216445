"""`rung lint`: the rules on fixtures of each trap, the ignore comment, exit codes, the
three output formats (SARIF validated against the 2.1.0 schema shipped beside it), and
hostile files: too deep, undecodable, too big, not regular."""

import json
import os
import re
import socket
from pathlib import Path

import jsonschema
import pytest

import rung.state.lint as rung_lint
from rung.state.lint import MAX_FILE_BYTES, RULES, lint_paths, lint_source
from tests.helpers import rung

FIXTURES = Path(__file__).parent / "fixtures"
SCHEMA = (
    Path(__file__).parent / "sarif-schema-2.1.0.json"
)  # from @microsoft/sarif-multitool 5.7.0 (MIT)
TRAPS = [
    "module_state.py", "caches_and_sessions.py", "local_files.py", "timers.py", "settings.py",
    "broken.py",
]  # fmt: skip


def expected(path: Path) -> set[tuple[int, str]]:
    """The `# expect: RUNGxxx` markers of a fixture, as (line, rule)."""
    out = set()
    for number, line in enumerate(path.read_text().splitlines(), 1):
        for rule in re.findall(r"# expect: (RUNG\d{3})", line):
            out.add((number, rule))
    return out


@pytest.mark.parametrize("name", TRAPS)
def test_each_trap_is_reported_on_its_line_and_nothing_else(name: str) -> None:
    path = FIXTURES / name
    found = {(f.line, f.rule) for f in lint_paths([path])}
    assert found == expected(path)


def test_clean_code_has_no_findings() -> None:
    assert lint_paths([FIXTURES / "clean.py"]) == []


def test_every_rule_of_the_three_families_is_exercised() -> None:
    exercised = set().union(*({r for _, r in expected(FIXTURES / n)} for n in TRAPS))
    assert exercised == set(RULES)


def test_each_rule_is_a_module_of_its_own_with_its_id_and_checks() -> None:
    """The rules are plug-ins: a module each under `_rules`, named for its rule, holding
    its metadata and at least one hook; the package finds them all."""
    folder = Path(rung_lint.__file__).parent / "_rules"
    modules = sorted(p.stem for p in folder.glob("rung[0-9][0-9][0-9]_*.py"))
    assert [m[:7].upper() for m in modules] == sorted(set(RULES) - {"RUNG000"})
    hooks = {"on_call", "on_change", "on_global", "on_function", "on_string", "on_assigned",
             "on_module_cache"}  # fmt: skip
    for module in modules:
        source = (folder / f"{module}.py").read_text()
        assert f'"{module[:7].upper()}", "{RULES[module[:7].upper()].name}"' in source
        assert any(f"def {hook}(" in source for hook in hooks), module


def test_one_line_can_carry_findings_of_several_rules() -> None:
    source = (
        "import shelve\n\nsessions = {}\n\n\n"
        "def login(user, path):\n    sessions[user] = shelve.open(path)\n"
    )
    assert sorted(f.rule for f in lint_source(source, "m.py") if f.line == 7) == [
        "RUNG103", "RUNG202",
    ]  # fmt: skip


def test_an_ignore_comment_drops_only_the_named_rules_on_its_line() -> None:
    source = "x = {}\ndef f():\n    x[1] = 1  # rung: ignore[RUNG101]\n    x[2] = 2\n"
    assert [(f.line, f.rule) for f in lint_source(source, "m.py")] == [(4, "RUNG101")]
    other = "x = {}\ndef f():\n    x[1] = 1  # rung: ignore[RUNG301, RUNG201]\n"
    assert [f.rule for f in lint_source(other, "m.py")] == ["RUNG101"]


def test_every_finding_names_its_fix() -> None:
    findings = lint_paths([FIXTURES])
    assert findings
    assert all(f.fix and f.fix == RULES[f.rule].fix for f in findings)
    assert {f.fix for f in findings if f.rule.startswith("RUNG3")} >= {
        RULES["RUNG301"].fix
    } and "rung.Singleton" in RULES["RUNG301"].fix


def test_the_cli_exits_1_on_findings_0_when_clean_2_on_usage_errors() -> None:
    traps = rung("lint", str(FIXTURES / "timers.py"))
    assert traps.returncode == 1
    assert f"{FIXTURES / 'timers.py'}:42:5: RUNG301" in traps.stdout
    assert "fix: Use rung.Singleton" in traps.stdout
    assert rung("lint", str(FIXTURES / "clean.py")).returncode == 0
    missing = rung("lint", "no/such/dir")
    assert missing.returncode == 2
    assert "no such file or directory: no/such/dir" in missing.stderr
    assert rung("lint", str(FIXTURES), "--format", "xml").returncode == 2
    assert rung("lint").returncode == 2


def test_a_syntax_error_is_reported_and_the_other_files_are_still_checked() -> None:
    done = rung("lint", str(FIXTURES / "broken.py"), str(FIXTURES / "timers.py"))
    assert done.returncode == 1
    assert "broken.py:1:" in done.stdout and "RUNG000" in done.stdout
    assert "RUNG301" in done.stdout
    assert "Traceback" not in done.stderr


def test_json_output_lists_every_finding() -> None:
    done = rung("lint", str(FIXTURES), "--format", "json")
    rows = json.loads(done.stdout)
    assert len(rows) == len(lint_paths([FIXTURES]))
    assert set(rows[0]) == {
        "path", "line", "col", "rule", "name", "message", "fix", "via", "safe_when",
    }  # fmt: skip


def test_a_finding_names_the_calls_that_reach_it_and_the_setting_that_makes_it_safe(
    tmp_path: Path,
) -> None:
    views = (
        "import os\n\nseen = {}\n"
        "DATABASE_URL = os.getenv('DATABASE_URL') or 'sqlite:///app.db'\n\n\n"
        "def view(key):\n    return service(key)\n\n\n"
        "def service(key):\n    remember(key)\n\n\n"
        "def remember(key):\n    seen[key] = True\n"
    )
    lint_app(tmp_path, {"views.py": views})
    done = rung("lint", str(tmp_path), "--format", "json")
    rows = {row["rule"]: row for row in json.loads(done.stdout)}
    found = (rows["RUNG101"]["line"], rows["RUNG101"]["via"])
    assert found == (16, ["view", "service", "remember"])
    assert (rows["RUNG202"]["safe_when"], rows["RUNG202"]["via"]) == ("DATABASE_URL", [])
    text = rung("lint", str(tmp_path)).stdout
    assert "via: view() -> service() -> remember()" in text
    assert "safe when: DATABASE_URL names a shared server" in text


def test_sarif_output_validates_against_the_sarif_2_1_0_schema() -> None:
    done = rung("lint", str(FIXTURES), "--format", "sarif")
    assert done.returncode == 1
    log = json.loads(done.stdout)
    jsonschema.validate(log, json.loads(SCHEMA.read_text()))
    run = log["runs"][0]
    assert len(run["results"]) == len(lint_paths([FIXTURES]))
    assert {r["id"] for r in run["tool"]["driver"]["rules"]} == set(RULES)
    clean = json.loads(rung("lint", str(FIXTURES / "clean.py"), "--format", "sarif").stdout)
    jsonschema.validate(clean, json.loads(SCHEMA.read_text()))


def test_rungs_own_source_is_clean() -> None:
    assert lint_paths([Path(__file__).parents[2] / "src"]) == []


@pytest.mark.parametrize("package", ["starlette", "fastapi"])
def test_it_runs_on_real_frameworks_without_crashing(package: str) -> None:
    module = __import__(package)
    root = Path(module.__file__).parent
    done = rung("lint", str(root), "--format", "json")
    assert done.returncode in (0, 1), done.stderr
    rows = json.loads(done.stdout)
    assert not [r for r in rows if r["rule"] == "RUNG000"]
    print(f"{package}: {len(rows)} findings", sorted({r["rule"] for r in rows}))


TRAP = "import threading\n\ndef arm():\n    threading.Timer(1.0, arm).start()\n"


def lint_json(*paths: Path) -> tuple[int, list[dict[str, object]]]:
    """`rung lint --format json` run as a command, bounded so that a hang fails the test."""
    done = rung("lint", *map(str, paths), "--format", "json", timeout=60)
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, json.loads(done.stdout)


def rules_by_file(rows: list[dict[str, object]]) -> set[tuple[str, object]]:
    return {(Path(str(r["path"])).name, r["rule"]) for r in rows}


def test_a_huge_expression_and_a_fifo_do_not_stop_the_run(tmp_path: Path) -> None:
    """The acceptance case: a 100,000-term expression is RUNG000, a FIFO is skipped unopened
    (opening it would block), and the trap beside them is still reported."""
    (tmp_path / "expr.py").write_text("x = " + " + ".join(["1"] * 100_000) + "\n")
    os.mkfifo(tmp_path / "x.py")
    (tmp_path / "trap.py").write_text(TRAP)
    code, rows = lint_json(tmp_path)
    assert code == 1
    assert rules_by_file(rows) == {("expr.py", "RUNG000"), ("trap.py", "RUNG301")}
    [expr] = [r for r in rows if r["rule"] == "RUNG000"]
    assert "nested too deeply to parse" in str(expr["message"])


def test_a_50000_long_attribute_chain_is_rung000_for_its_file_only(tmp_path: Path) -> None:
    (tmp_path / "chain.py").write_text("a" + ".b" * 50_000 + "\n")
    (tmp_path / "trap.py").write_text(TRAP)
    found = {(Path(f.path).name, f.rule) for f in lint_paths([tmp_path])}
    assert found == {("chain.py", "RUNG000"), ("trap.py", "RUNG301")}


def test_a_tree_deeper_than_the_recursion_limit_is_walked_to_its_bottom() -> None:
    """The parser accepts trees deeper than Python's recursion limit, so the walk that looks
    for traps must not recurse: the timer under 2,500 unary minuses is found."""
    source = "import threading\nx = " + "-" * 2_500 + "threading.Timer(1.0, print)\n"
    assert [(f.line, f.rule) for f in lint_source(source, "deep.py")] == [(2, "RUNG301")]


def test_a_source_too_complex_for_the_parser_is_rung000() -> None:
    [finding] = lint_source("x = " + "not " * 10_000 + "y\n", "m.py")
    assert (finding.rule, finding.message) == (
        "RUNG000",
        "too complex to parse: the parser ran out of stack",
    )


def test_invalid_utf8_is_rung000_at_the_bad_byte(tmp_path: Path) -> None:
    (tmp_path / "bad.py").write_bytes(b"x = 1\ny = '\xff'\n")
    [finding] = lint_paths([tmp_path / "bad.py"])
    assert (finding.line, finding.col, finding.rule) == (2, 6, "RUNG000")
    assert finding.message == "cannot decode as utf-8: invalid start byte (byte 0xff)"


def test_a_coding_line_is_honoured_and_an_unknown_one_is_rung000(tmp_path: Path) -> None:
    latin = tmp_path / "latin.py"
    latin.write_bytes(b"# -*- coding: latin-1 -*-\nname = '\xe9t\xe9'\n" + TRAP.encode())
    assert [f.rule for f in lint_paths([latin])] == ["RUNG301"]
    unknown = tmp_path / "unknown.py"
    unknown.write_bytes(b"# coding: no-such-codec\nx = 1\n")
    [finding] = lint_paths([unknown])
    assert (finding.rule, finding.message) == (
        "RUNG000",
        "cannot decode: unknown encoding: no-such-codec",
    )


def test_a_null_byte_is_rung000_on_its_line() -> None:
    [finding] = lint_source("x = 1\ny = 2\x00\n", "m.py")
    assert (finding.line, finding.rule) == (2, "RUNG000")
    assert finding.message == "cannot parse: the file contains a null byte"


def test_a_file_over_the_size_limit_is_rung000_without_being_read(tmp_path: Path) -> None:
    big = tmp_path / "big.py"
    with big.open("wb") as f:
        f.truncate(MAX_FILE_BYTES + 1)  # sparse: nothing is written
    [finding] = lint_paths([big])
    assert (finding.rule, finding.message) == (
        "RUNG000",
        f"the file is over rung lint's size limit of {MAX_FILE_BYTES // 2**20} MiB",
    )


def test_sockets_devices_fifos_and_directories_named_py_are_skipped(tmp_path: Path) -> None:
    """Only regular files are read; a symlink to a regular file is one."""
    os.mkfifo(tmp_path / "fifo.py")
    (tmp_path / "fifo_link.py").symlink_to(tmp_path / "fifo.py")
    (tmp_path / "null.py").symlink_to("/dev/null")
    (tmp_path / "package.py").mkdir()
    (tmp_path / "trap.py").write_text(TRAP)
    (tmp_path / "trap_link.py").symlink_to(tmp_path / "trap.py")
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(tmp_path / "socket.py"))
        code, rows = lint_json(tmp_path)
        named = rung("lint", str(tmp_path / "fifo.py"), timeout=60)
    assert code == 1
    assert rules_by_file(rows) == {("trap.py", "RUNG301"), ("trap_link.py", "RUNG301")}
    assert (named.returncode, named.stdout) == (0, "no findings\n")


def test_hidden_and_vendored_directories_are_not_entered(tmp_path: Path) -> None:
    for directory in (".venv", "node_modules", "__pycache__", "app"):
        (tmp_path / directory).mkdir()
        (tmp_path / directory / "trap.py").write_text(TRAP)
    assert [Path(f.path).parent.name for f in lint_paths([tmp_path])] == ["app"]


def test_an_ignore_comment_counts_lines_as_python_does() -> None:
    """A form feed or U+2028 in a string is not a line end: the comment stays on line 3."""
    source = "x = {}\ndef f():\n    x['\x0c\u2028'] = 1  # rung: ignore[RUNG101]\n"
    assert lint_source(source, "m.py") == []


def test_a_container_of_another_module_changed_here_is_reported_here(tmp_path: Path) -> None:
    """`from app.state import registry` or `from app import state`, then a handler changes
    it: module state, though defined in another module of the tree."""
    views = (
        "from app import state\nfrom app.state import CONFIG, registry\n\n\n"
        "def register(key, value):\n"
        "    registry[key] = value\n"
        "    state.registry[key][0] = value\n"
        "    local = {}\n"
        "    local[key] = CONFIG\n"
    )
    found = lint_app(
        tmp_path, {"state.py": "registry = {}\nCONFIG = ('a', 'b')\n", "views.py": views}
    )
    assert found == [("views.py", 6, "RUNG101"), ("views.py", 7, "RUNG101")]


def lint_app(root: Path, modules: dict[str, str]) -> list[tuple[str, int, str]]:
    """Lint a package `app` of `modules` (name -> source) under `root`: (file, line, rule)."""
    (root / "app").mkdir(parents=True)
    for name, source in modules.items():
        (root / "app" / name).write_text(source)
    return [(Path(f.path).name, f.line, f.rule) for f in lint_paths([root])]


def test_objects_that_live_as_long_as_the_process_are_found_across_the_tree(
    tmp_path: Path,
) -> None:
    """An instance bound to a global inside a function (`global store`), an object a
    long-lived one keeps on `self`, and a mapping of any class stored into by key: each
    is state of the process. The same classes made per request are not."""
    store = (
        "class Model(dict):\n    pass\n\n\n"
        "class Journal:\n"
        "    def __init__(self):\n        self.lines = []\n\n"
        "    def write(self, line):\n        self.lines.append(line)\n\n\n"
        "class Store:\n"
        "    def __init__(self):\n"
        "        self.data = Model()\n        self.journal = Journal()\n\n"
        "    def add(self, key, value):\n"
        "        self.data['watching'][key] = value\n"
        "        self.journal.write(key)\n\n\n"
        "class Draft:\n"
        "    def __init__(self):\n        self.data = Model()\n\n"
        "    def add(self, key, value):\n        self.data[key] = value\n"
    )
    main = (
        "from app.store import Draft, Store\n\nstore = None\n\n\n"
        "def main():\n    global store\n    store = Store()\n\n\n"
        "def view(key):\n    store.add(key, 1)\n    draft = Draft()\n    draft.add(key, 2)\n\n\n"
        "if __name__ == '__main__':\n    main()\n"
    )
    found = lint_app(tmp_path, {"store.py": store, "main.py": main})
    assert found == [("store.py", 10, "RUNG101"), ("store.py", 19, "RUNG101")]


def test_an_object_a_factory_makes_for_a_module_global_is_state_of_the_process(
    tmp_path: Path,
) -> None:
    """`args, controller = create_controller()` under `__main__`, then a handler calls
    `controller.register(...)`: what `register` keeps on `self` is the process's. The same
    class made per request is not."""
    controller = (
        "class Controller:\n"
        "    def __init__(self):\n        self.workers = {}\n\n"
        "    def register(self, name):\n        self.workers[name] = True\n\n\n"
        "def create_controller():\n    return None, Controller()\n\n\n"
        "def add_worker(name):\n    controller.register(name)\n\n\n"
        "def scratch(name):\n    local = Controller()\n    local.register(name)\n\n\n"
        "if __name__ == '__main__':\n    args, controller = create_controller()\n"
    )
    assert lint_app(tmp_path, {"controller.py": controller}) == [("controller.py", 6, "RUNG101")]
    (tmp_path / "app" / "controller.py").write_text(controller.replace("controller.register(name)",
                                                                       "pass"))  # fmt: skip
    assert [f.rule for f in lint_paths([tmp_path])] == []


def test_a_count_or_a_time_kept_on_a_long_lived_object_is_reported(tmp_path: Path) -> None:
    """A module-level rate limiter's last request time, a counter: each instance keeps its
    own. An iterator's position (`__next__`) and a client made once are not state."""
    limiter = (
        "import time\n\n\n"
        "class Limiter:\n"
        "    def __init__(self):\n        self.last = 0.0\n        self.calls = 0\n"
        "        self.client = None\n        self.i = 0\n\n"
        "    def wait(self):\n        self.last = time.time()\n        self.calls += 1\n\n"
        "    def connect(self):\n        if self.client is None:\n"
        "            self.client = object()\n\n"
        "    def __next__(self):\n        self.i += 1\n        return self.i\n\n\n"
        "limiter = Limiter()\n"
    )
    assert lint_app(tmp_path, {"limiter.py": limiter}) == [
        ("limiter.py", 12, "RUNG101"), ("limiter.py", 13, "RUNG101"),
    ]  # fmt: skip


def test_djangos_cache_is_state_where_the_settings_keep_it_in_each_process(
    tmp_path: Path,
) -> None:
    """Settings with no CACHES (Django's default is LocMemCache), then a view fills the
    cache: reported there. With CACHES on Redis it is not."""
    views = (
        "from django.core.cache import cache\n\n\n"
        "def export(request, key):\n    cache.set(key, b'file', 3600)\n"
    )
    settings = "INSTALLED_APPS = ['app']\n"
    found = lint_app(tmp_path / "a", {"settings.py": settings, "views.py": views})
    assert found == [("views.py", 5, "RUNG104")]
    redis = (
        settings
        + "CACHES = {'default': {'BACKEND': 'django.core.cache.backends.redis.RedisCache'}}\n"
    )
    assert lint_app(tmp_path / "b", {"settings.py": redis, "views.py": views}) == []


def test_djangos_cache_by_alias_is_state_where_the_settings_keep_it_in_each_process(
    tmp_path: Path,
) -> None:
    """`caches["default"].set(...)` with LocMemCache settings, replaced by Redis only when
    an environment variable is set: reported, as `cache.set` is. Another alias is not."""
    views = (
        "from django.core.cache import caches\n\n\n"
        "def guard(request, email):\n"
        "    caches['default'].get_or_set(email, 1, timeout=360)\n"
        "    caches['sessions'].set(email, 1)\n"
    )
    settings = (
        "import os\n\nINSTALLED_APPS = ['app']\n"
        "CACHES = {'default': {'BACKEND': 'django.core.cache.backends.locmem.LocMemCache'}}\n"
        "if os.getenv('REDIS_HOST'):\n"
        "    CACHES['default'] = {'BACKEND': 'django.core.cache.backends.redis.RedisCache'}\n"
    )
    found = lint_app(tmp_path, {"settings.py": settings, "views.py": views})
    assert ("views.py", 5, "RUNG104") in found
    assert [f for f in found if f[0] == "views.py"] == [("views.py", 5, "RUNG104")]


def test_a_container_of_a_class_is_one_per_process_for_all_its_instances(
    tmp_path: Path,
) -> None:
    """A class attribute `{}` filled through the class's name, through `self` in a
    subclass of another module, or by `__init__` of a class a request makes: one registry
    per process. `__init__` of a class made only at startup fills it alike everywhere."""
    loader = (
        "class Loader:\n    by_id: dict = {}\n\n"
        "    def register(self, key):\n        self.by_id[key] = self\n\n\n"
        "class Units:\n    cache = {}\n\n"
        "    def base(self, space):\n        Units.cache[space] = [space]\n"
    )
    plugins = (
        "from app.loader import Loader\n\n\n"
        "class Zipped(Loader):\n    by_path = {}\n\n"
        "    def __init__(self, path):\n        self.by_path[path] = self\n\n"
        "    @classmethod\n    def get(cls, path):\n        return cls(path)\n\n\n"
        "class Builtin(Loader):\n    made = []\n\n"
        "    def __init__(self):\n        self.made.append(self)\n\n\n"
        "BUILTIN = Builtin()\n\n\n"
        "def upload(request):\n    Zipped.get(request.path).register(request.id)\n"
    )
    found = lint_app(tmp_path, {"loader.py": loader, "plugins.py": plugins})
    assert found == [
        ("loader.py", 5, "RUNG101"), ("loader.py", 12, "RUNG101"), ("plugins.py", 8, "RUNG101"),
    ]  # fmt: skip


def test_settings_changed_on_a_module_level_object_at_request_time_are_reported(
    tmp_path: Path,
) -> None:
    """`setattr(settings, key, value)` and `settings.theme = ...` in a handler, `settings`
    a module-level object of the tree imported here: other instances keep the old
    settings. At startup, in a test, or on a local of that name, it is not."""
    config = "class Settings:\n    theme = 'light'\n\n\nsettings = Settings()\n"
    views = (
        "from app.config import settings\n\n\n"
        "def update(request):\n"
        "    for key, value in request.json.items():\n"
        "        setattr(settings, key, value)\n"
        "    settings.theme = request.theme\n\n\n"
        "def create_app():\n    settings.theme = 'dark'\n\n\n"
        "def preview(request, settings):\n    settings.theme = request.theme\n\n\n"
        "def test_update():\n    settings.theme = 'x'\n"
    )
    found = lint_app(tmp_path, {"config.py": config, "views.py": views})
    assert found == [("views.py", 6, "RUNG101"), ("views.py", 7, "RUNG101")]


def test_a_singleton_and_an_object_kept_on_the_app_live_as_long_as_the_process(
    tmp_path: Path,
) -> None:
    """`Controller._instance = Controller()` and `app.hub = Hub()`: what their methods keep
    is the process's. An object that subscribes to a shared bus keeps its own subscribers,
    fed from the bus: not reported."""
    store = (
        "class Controller:\n"
        "    def __init__(self):\n        self.projects = {}\n\n"
        "    def add(self, key):\n        self.projects[key] = True\n\n"
        "    @staticmethod\n    def instance():\n"
        "        if not hasattr(Controller, '_instance'):\n"
        "            Controller._instance = Controller()\n"
        "        return Controller._instance\n\n\n"
        "class Hub:\n"
        "    def __init__(self):\n        self.clients = {}\n\n"
        "    def join(self, key, queue):\n        self.clients[key] = queue\n\n\n"
        "class BusHub:\n"
        "    def __init__(self, redis):\n        self.clients = {}\n"
        "        self.pubsub = redis.pubsub()\n\n"
        "    def join(self, key, queue):\n        self.clients[key] = queue\n\n"
        "    def listen(self):\n        self.pubsub.subscribe('events')\n"
    )
    views = (
        "from app.store import BusHub, Controller, Hub\n\n\n"
        "def create_app(redis):\n    app = object()\n    app.hub = Hub()\n"
        "    app.bus = BusHub(redis)\n    return app\n\n\n"
        "def add_project(request):\n    Controller.instance().add(request.key)\n\n\n"
        "def join(request):\n    request.app.hub.join(request.key, request.queue)\n"
        "    request.app.bus.join(request.key, request.queue)\n"
    )
    found = lint_app(tmp_path, {"store.py": store, "views.py": views})
    assert found == [("store.py", 6, "RUNG101"), ("store.py", 20, "RUNG101")]


def test_a_container_a_blueprint_factory_makes_is_shared_by_its_routes(tmp_path: Path) -> None:
    """`running = []` in `construct_blueprint`, appended to by a route it defines: one list
    per process, for as long as the app. A route is a request handler even when its name
    says start. A handler's own list is not state."""
    blueprint = (
        "from flask import Blueprint\n\n\n"
        "def construct_blueprint(store):\n"
        "    bp = Blueprint('backups', __name__)\n    running = []\n\n"
        "    @bp.route('/backup', methods=['POST'])\n"
        "    def start_backup():\n        running.append(store.name)\n        return 'ok'\n\n"
        "    @bp.route('/status')\n"
        "    def status():\n        seen = []\n        seen.append(len(running))\n"
        "        return str(seen)\n\n"
        "    return bp\n"
    )
    assert lint_app(tmp_path, {"backups.py": blueprint}) == [("backups.py", 10, "RUNG101")]


def test_a_registry_on_a_module_level_object_read_whole_is_state_of_the_process(
    tmp_path: Path,
) -> None:
    """`handler.listeners.append(ws)`, `handler` a module-level object whose class sends to
    all its listeners: a viewer sees only this instance's. If nothing reads the registry
    whole, it is this process's own connections: not reported."""
    log = (
        "class Collector:\n"
        "    def __init__(self):\n        self.listeners = []\n\n"
        "    def send(self, record):\n        for ws in self.listeners:\n"
        "            ws.send(record)\n\n\n"
        "handler = Collector()\n\n\n"
        "async def log_websocket(request, ws):\n    handler.listeners.append(ws)\n"
    )
    assert lint_app(tmp_path / "a", {"log.py": log}) == [("log.py", 14, "RUNG101")]
    quiet = log.replace("        for ws in self.listeners:\n            ws.send(record)\n",
                        "        pass\n")  # fmt: skip
    assert lint_app(tmp_path / "b", {"log.py": quiet}) == []


def test_what_counts_in_djangos_cache_is_per_process_where_the_cache_is(tmp_path: Path) -> None:
    """Sessions read from the cache, django-axes' cache handler and DRF's throttles count
    in Django's cache: reported where the settings keep it in each process, with no
    CACHES (LocMemCache). With Redis, or LocMemCache only in debug or in a test's settings,
    they are not; a set of names is a lookup, not a setting."""
    settings = (
        "INSTALLED_APPS = ['app']\n"
        "SESSION_ENGINE = 'django.contrib.sessions.backends.cached_db'\n"
        "AXES_HANDLER = 'axes.handlers.cache.AxesCacheHandler'\n"
        "REST_FRAMEWORK = {'DEFAULT_THROTTLE_CLASSES': "
        "['rest_framework.throttling.ScopedRateThrottle']}\n"
        "KNOWN = {'django.contrib.sessions.backends.cache'}\n"
    )
    found = lint_app(tmp_path / "a", {"settings.py": settings})
    assert found == [("settings.py", 2, "RUNG103"), ("settings.py", 3, "RUNG106"),
                     ("settings.py", 4, "RUNG106")]  # fmt: skip
    debug_only = settings + (
        "DEBUG = False\n"
        "CACHES = {'default': {'BACKEND': 'django.core.cache.backends.locmem.LocMemCache'\n"
        "    if DEBUG else 'django.core.cache.backends.redis.RedisCache'}}\n"
    )
    test_settings = (
        "CACHES = {'default': {'BACKEND': 'django.core.cache.backends.locmem.LocMemCache'}}\n"
    )
    modules = {"settings.py": debug_only, "ci.py": test_settings}
    assert lint_app(tmp_path / "b", modules) == []


def test_scratch_files_are_those_removed_after_use(tmp_path: Path) -> None:
    """A path from the app's own context manager that unlinks what it yields, or a file
    the same function removes after writing it, is scratch. A file written and kept is
    not; a file removed *before* it is written again is a cache, reported."""
    files = (
        "import os\nfrom contextlib import contextmanager\nfrom pathlib import Path\n\n\n"
        "@contextmanager\ndef temporary_zip():\n    path = Path('data/tmp.zip')\n"
        "    try:\n        yield path\n    finally:\n        path.unlink()\n\n\n"
        "def migrate(upload):\n    with temporary_zip() as path:\n"
        "        with path.open('wb') as f:\n            f.write(upload)\n\n\n"
        "def bundle(data):\n    temp = Path('data/bundle.zip')\n"
        "    with open(temp, 'wb') as f:\n        f.write(data)\n    temp.unlink()\n\n\n"
        "def refresh(data):\n    cached = Path('data/cache.json')\n    os.remove(cached)\n"
        "    with open(cached, 'w') as f:\n        f.write(data)\n"
    )
    assert lint_app(tmp_path, {"files.py": files}) == [("files.py", 31, "RUNG201")]


def test_a_file_only_a_scripts_main_writes_is_the_scripts(tmp_path: Path) -> None:
    """`main()` under `if __name__ == "__main__":` writes the model file: the script's,
    run once at build time. A class view's `post` that writes is reached from a request
    even when the tree calls `.post(...)` elsewhere."""
    script = (
        "def main():\n    with open('model.crf', 'wb') as f:\n        f.write(b'')\n\n\n"
        "if __name__ == '__main__':\n    main()\n"
    )
    views = (
        "import requests\n\n\n"
        "class Upload:\n    def post(self, request):\n"
        "        with open('uploads/' + request.name, 'wb') as f:\n"
        "            f.write(request.body)\n\n\n"
        "def notify():\n    requests.post('https://example.org')\n\n\n"
        "if __name__ == '__main__':\n    notify()\n"
    )
    found = lint_app(tmp_path, {"install_model.py": script, "views.py": views})
    assert found == [("views.py", 6, "RUNG201")]


def test_the_app_changed_through_current_app_by_a_request_is_reported(tmp_path: Path) -> None:
    """`current_app.config["sids"][sid] = ...` (under any name it is imported as) and what
    a handler took with `getattr(current_app, ...)`, changed in a route: reported. The same
    in a function nothing in the tree calls (a plugin's hook at startup) is not; nor a
    settings object imported from the package (`from . import config`) set at startup."""
    views = (
        "from flask import Blueprint, current_app as app\n\nfrom . import config\n\n"
        "bp = Blueprint('psql', __name__)\n\n\n"
        "@bp.route('/open')\ndef open_terminal(sid):\n"
        "    app.config['sids'][sid] = []\n    beats = getattr(app, 'beats', {})\n"
        "    beats[sid] = 1\n    config.theme = sid\n\n\n"
        "def register_script(url):\n    app.plugin_scripts.append(url)\n"
    )
    init = "class Config:\n    theme = 'light'\n\n\nconfig = Config()\n"
    found = lint_app(tmp_path, {"__init__.py": init, "views.py": views})
    assert found == [("views.py", 10, "RUNG101"), ("views.py", 12, "RUNG101"),
                     ("views.py", 13, "RUNG101")]  # fmt: skip


def test_an_item_taken_out_of_a_long_lived_objects_mapping_and_changed_is_state(
    tmp_path: Path,
) -> None:
    """`user = self.users.get(uid)` then `user[...] = ...` on a module-level key manager:
    the process's. The same on a local dict is not."""
    keys = (
        "class KeyManager:\n"
        "    def __init__(self):\n        self.users = {}\n\n"
        "    def set(self, uid, key):\n        user = self.users.setdefault(uid, {})\n"
        "        user['key'] = key\n\n"
        "    def scratch(self, uid):\n        found = {}\n        found[uid] = 1\n\n\n"
        "keys = KeyManager()\n"
    )
    assert lint_app(tmp_path, {"keys.py": keys}) == [("keys.py", 7, "RUNG101")]


def test_a_loop_of_another_module_started_through_the_apps_spawner_at_startup(
    tmp_path: Path,
) -> None:
    """`spawn(every_minute)` in a helper that only the lifespan calls, `every_minute` a
    sleep loop of another module, `spawn` the app's own wrapper of create_task: every
    instance runs the loop. Called from a request handler, it is not reported."""
    tasks = (
        "import asyncio\n\n\n"
        "def spawn(func):\n    return asyncio.create_task(func())\n\n\n"
        "async def every_minute():\n    while True:\n        await asyncio.sleep(60)\n"
    )
    app = (
        "from app.tasks import every_minute, spawn\n\n\n"
        "def register_tasks():\n    spawn(every_minute)\n\n\n"
        "async def lifespan(app):\n    register_tasks()\n    yield\n"
    )
    assert lint_app(tmp_path / "a", {"tasks.py": tasks, "main.py": app}) == [
        ("main.py", 5, "RUNG304"),
    ]  # fmt: skip
    handler = (
        app.replace("    register_tasks()\n", "    pass\n")
        + "\n\ndef view():\n    register_tasks()\n"
    )
    assert lint_app(tmp_path / "b", {"tasks.py": tasks, "main.py": handler}) == []


def test_a_tree_big_enough_for_every_core_gives_what_one_module_at_a_time_would(
    tmp_path: Path,
) -> None:
    """450 modules (worker processes check them in chunks): a container defined in the
    first and changed in each other one is reported in each, across chunks."""
    (tmp_path / "shared.py").write_text("registry = {}\n")
    for i in range(450):
        (tmp_path / f"m{i}.py").write_text(
            f"from shared import registry\n\n\ndef add(value):\n    registry[{i}] = value\n"
        )
    found = lint_paths([tmp_path])
    assert len(found) == 450
    assert {(f.line, f.rule) for f in found} == {(5, "RUNG101")}
    assert {Path(f.path).name for f in found} == {f"m{i}.py" for i in range(450)}


DOCS = Path(__file__).parents[2] / "docs" / "state.md"
PAIR = re.compile(r"<!-- (trap|safe): (RUNG\d{3}) -->\n```python\n(.*?)```", re.DOTALL)


def test_docs_show_each_rule_with_a_trap_it_reports_and_a_look_alike_it_does_not() -> None:
    pairs = PAIR.findall(DOCS.read_text())
    assert {(kind, rule) for kind, rule, _ in pairs} == {
        (kind, rule) for kind in ("trap", "safe") for rule in RULES if rule != "RUNG000"
    }
    for kind, rule, code in pairs:
        found = {f.rule for f in lint_source(code, f"{rule}_{kind}.py")}
        assert (rule in found) == (kind == "trap"), (kind, rule, found)
        if kind == "safe":
            assert not found, (rule, found)
