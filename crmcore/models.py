"""Imports every core model module, so that ``Base.metadata`` knows the whole core schema."""

from crmcore.audit.models import *  # noqa: F401,F403
from crmcore.auth.models import *  # noqa: F401,F403
from crmcore.fields.models import *  # noqa: F401,F403
from crmcore.lists.models import *  # noqa: F401,F403
from crmcore.messaging.models import *  # noqa: F401,F403
from crmcore.numbering.models import *  # noqa: F401,F403
from crmcore.outbox.models import *  # noqa: F401,F403
from crmcore.parties import search as _party_search  # noqa: F401  (registers the search index DDL)
from crmcore.parties.models import *  # noqa: F401,F403
from crmcore.pipelines.models import *  # noqa: F401,F403
from crmcore.plugins.models import *  # noqa: F401,F403
from crmcore.records.models import *  # noqa: F401,F403
from crmcore.tenancy.models import *  # noqa: F401,F403
from crmcore.timeline.models import *  # noqa: F401,F403
