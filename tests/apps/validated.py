"""The probe app behind wsgiref.validate, with every warning an error:
any PEP 3333 violation by the server becomes a 500 and a logged traceback."""

import warnings
from wsgiref.validate import validator

from probe import application as probe

warnings.simplefilter("error")
application = validator(probe)
