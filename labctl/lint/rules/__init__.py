"""The rules of ``labctl check``, one function each, registered with their library scenario.

A rule reads only the topology model (:mod:`labctl.stack.topology`), never a file format, so
Compose and Kubernetes inputs go through the same code. Adding a rule: write a function
yielding :class:`~labctl.lint.Hit` in the module of its family, decorate it with
:func:`~labctl.lint.register`, name the scenario that shows the pitfall on an engine and its
twin; ``--list-rules``, the SARIF rule table, docs/check.md and the library test pick it up.
Importing this package registers every rule: namespaces, then memory, then access.
"""

from labctl.lint.rules import namespaces  # noqa: F401 - registers
from labctl.lint.rules import sizing  # noqa: F401
from labctl.lint.rules import access  # noqa: F401
