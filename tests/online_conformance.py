"""Moved to ``sparkfs.testing.conformance`` (users run it against their own stores); this
name stays so that test modules written against the old location keep importing."""

from sparkfs.testing.conformance import *  # noqa: F401,F403
from sparkfs.testing.conformance import same_value as _same  # noqa: F401
