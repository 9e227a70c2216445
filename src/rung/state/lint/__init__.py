"""`rung lint`: find the statefulness traps that stop a service from scaling out.

from rung.state.lint import lint_paths
for finding in lint_paths([Path("app")]):
    print(finding.path, finding.line, finding.rule, finding.fix)
"""

from rung.state.lint._engine import lint_paths, lint_source
from rung.state.lint._files import MAX_FILE_BYTES
from rung.state.lint._finding import Finding
from rung.state.lint._rules import RULES, Rule

__all__ = ["MAX_FILE_BYTES", "RULES", "Finding", "Rule", "lint_paths", "lint_source"]
