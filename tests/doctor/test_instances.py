"""Instances on a stack of their own (the session's stack runs none): rung_links behind
HAProxy, its pools read from each instance's /metrics, and an instance HAProxy has DOWN."""

from collections.abc import Iterator

import pytest

from rung.doctor import Targets, Verdict, diagnose
from rung.stack import Stack
from rung.testing import wait_until
from tests.doctor.support import links_stack, named, urls


@pytest.fixture(scope="module")
def instances() -> Iterator[Stack]:
    with links_stack("rung-doctor-") as stack:
        yield stack


async def test_app_url_pools_are_compared_with_max_connections(instances: Stack) -> None:
    """With --app-url (the balancer) the doctor reads the one instance that answers."""
    stack = urls(instances)
    report = await diagnose(Targets(db=stack["primary_url"], app_url=stack["app_url"]),
                            sample=0.0)  # fmt: skip
    [pools] = named(report, "pools against max_connections")
    assert (pools.verdict, pools.rung) == (Verdict.ok, "pooling")
    assert (pools.evidence["instances_answered"], pools.evidence["instances_asked"]) == (1, 1)
    held = pools.evidence["pool_connections_primary"]
    assert isinstance(held, float) and held >= 1  # the instance's pool holds its min_size
    [in_use] = named(report, "connections in use")
    most, reserved = in_use.evidence["max_connections"], in_use.evidence["superuser_reserved"]
    assert isinstance(most, int) and isinstance(reserved, int)
    assert pools.evidence["usable_connections"] == most - reserved


async def test_from_the_stack_each_instance_pools_are_summed(instances: Stack) -> None:
    report = await diagnose(Targets.from_stack(instances.dir), sample=0.0)
    [pools] = named(report, "pools against max_connections")
    assert (pools.evidence["instances_answered"], pools.evidence["instances_asked"]) == (2, 2)
    # each instance's primary pool may grow to rung_links' db_pool (10 by default)
    assert pools.evidence["pool_max_connections_primary"] == 2 * 10
    [balancer] = named(report, "load balancer")
    assert (balancer.verdict, balancer.summary) == (Verdict.ok, "all 2 instances are UP")


async def test_an_instance_the_balancer_has_down_is_flagged(instances: Stack) -> None:
    instances.stop("app2")
    try:
        wait_until(lambda: instances.routed() == ["app1"], timeout=30.0)
        report = await diagnose(Targets.from_stack(instances.dir), sample=0.0)
    finally:
        instances.start("app2")
    [balancer] = named(report, "load balancer")
    assert balancer.verdict is Verdict.act
    assert "1 of 2 instances take no traffic: app2 is DOWN" in balancer.summary
    assert str(balancer.evidence["app2"]).startswith("DOWN")
    assert "stateless" in [step.rung for step in report.next]
    [pools] = named(report, "pools against max_connections")
    assert (pools.evidence["instances_answered"], pools.evidence["instances_asked"]) == (1, 2)
