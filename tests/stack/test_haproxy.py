"""Reading HAProxy's stats socket: which app instances take traffic."""

from pathlib import Path

import pytest

from rung.errors import ComponentFailed
from rung.stack import component, haproxy, proc

# `show stat` as HAProxy 2.6 prints it, cut to the columns rung reads (the order is HAProxy's).
SHOW_STAT = """\
# pxname,svname,status,check_status,check_desc,
web,FRONTEND,OPEN,,,
apps,app1,UP,L7OK,Layer7 check passed,
apps,app2,DOWN,L4CON,Layer4 connection problem,
apps,app3,UP 1/2,L7STS,Layer7 wrong status,
apps,BACKEND,UP,,,

"""


def test_parse_stat_lists_the_instances_with_their_state_and_last_check() -> None:
    """The frontend and backend summary rows are left out; each server keeps its state."""
    assert haproxy.parse_stat(SHOW_STAT) == [
        haproxy.Backend("app1", "UP", "L7OK", "Layer7 check passed"),
        haproxy.Backend("app2", "DOWN", "L4CON", "Layer4 connection problem"),
        haproxy.Backend("app3", "UP 1/2", "L7STS", "Layer7 wrong status"),
    ]


def test_an_instance_is_up_only_after_a_check_passed() -> None:
    """HAProxy starts servers UP before any check: that is not ready yet; nor is one that
    is failing its checks and not yet out ('UP 1/2')."""
    assert haproxy.Backend("app1", "UP", "L7OK", "").up
    assert not haproxy.Backend("app1", "UP", "INI", "").up
    assert not haproxy.Backend("app1", "UP 1/2", "L7STS", "").up
    assert not haproxy.Backend("app1", "DOWN", "L4CON", "").up


def _haproxy(dir: Path) -> haproxy.HAProxy:
    layout = component.Layout(dir, dir / "servers", proc.server_user())
    return haproxy.HAProxy("haproxy", layout, {"app1": 20001, "app2": 20002, "haproxy": 20000})


def test_the_config_names_every_instance_and_haproxy_accepts_it(tmp_path: Path) -> None:
    """prepare() writes DIR/haproxy.cfg with one server per instance, and `haproxy -c`
    (which prepare() runs) finds it valid."""
    _haproxy(tmp_path).prepare()
    config = (tmp_path / "haproxy.cfg").read_text()
    assert "    server app1 127.0.0.1:20001\n    server app2 127.0.0.1:20002\n" in config
    assert f"stats socket {tmp_path}/haproxy.sock mode 600 level admin" in config


def test_a_stats_socket_path_too_long_for_unix_sockets_is_a_clear_error(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 100)
    deep.mkdir()
    with pytest.raises(ComponentFailed, match="use a shorter --dir"):
        _haproxy(deep).prepare()
