"""What a running local stack offers, read from Python: each component, its URL and health.

Run it against a stack started with `rung up` (RUNG_DIR names its directory, default .rung):

    rung up --instances 2 && python examples/stack_tour.py
"""

from rung.stack import Stack, default_dir

stack = Stack(default_dir())
for component in stack.status():
    state = "healthy" if component["healthy"] else component["status"]
    print(f"{component['name']:<10} {component['url']:<48} {state}")
    if component.get("role") == "replica":
        print(f"{'':<10} replay lag {component['lag_bytes']} bytes, {component['lag_s']} s")
    if "backends" in component:  # HAProxy: each app instance as its checks see it
        states = ", ".join(f"{name} {state}" for name, state in component["backends"].items())
        print(f"{'':<10} instances {states}")
