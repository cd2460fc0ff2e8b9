"""An app whose import fails: rwsgi must say so in one line and exit 1."""

import module_that_does_not_exist  # noqa: F401

application = None
