"""Imports every core model module, so that ``Base.metadata`` knows the whole core schema."""

from crmcore.audit.models import *  # noqa: F401,F403
from crmcore.auth.models import *  # noqa: F401,F403
from crmcore.outbox.models import *  # noqa: F401,F403
from crmcore.plugins.models import *  # noqa: F401,F403
from crmcore.tenancy.models import *  # noqa: F401,F403
