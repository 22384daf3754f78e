"""The unit tier's service tests, unchanged, on PostgreSQL: purchase → paid → delivery →
refund, subscriptions and their refunds, the delivery queue (claim, retry, wait for a
member), the Stripe event inbox (order, retry, savepoints), stock and license keys, claim
codes, gifts, reconciliation, panels, notices, stats and the web shop.

`world` is tests/pg/conftest.py's (a World whose store is a fresh PostgreSQL database);
the tests themselves are imported from tests/unit, where they run on SQLite.
"""

from tests.unit.test_api_service import *  # noqa: F403
from tests.unit.test_claims import *  # noqa: F403
from tests.unit.test_delivery import *  # noqa: F403
from tests.unit.test_dispatch import *  # noqa: F403
from tests.unit.test_event_retry import *  # noqa: F403
from tests.unit.test_fleet import *  # noqa: F403
from tests.unit.test_fulfilment import *  # noqa: F403
from tests.unit.test_gifts import *  # noqa: F403
from tests.unit.test_inbox_batch import *  # noqa: F403
from tests.unit.test_licenses import *  # noqa: F403
from tests.unit.test_lifecycle import *  # noqa: F403
from tests.unit.test_notices import *  # noqa: F403
from tests.unit.test_panels import *  # noqa: F403
from tests.unit.test_product_edit import *  # noqa: F403
from tests.unit.test_purchases_state import *  # noqa: F403
from tests.unit.test_reconcile import *  # noqa: F403
from tests.unit.test_shop_stats import *  # noqa: F403
from tests.unit.test_skus import *  # noqa: F403
from tests.unit.test_stock import *  # noqa: F403
from tests.unit.test_subscription_refunds import *  # noqa: F403
from tests.unit.test_unclaimed_orders import *  # noqa: F403
from tests.unit.test_web_shop import *  # noqa: F403
from tests.unit.test_webhooks_out import *  # noqa: F403

# SQLite-only by construction: they copy the database file with `backup` (PostgreSQL's is
# pg_dump) or read it with SQLite's own SQL (a bare column beside GROUP BY, json_extract
# answering integers, SQLite's statement trace); what they prove is covered on PostgreSQL
# by the tests above.
del test_events_in_reverse_order_and_twice_end_in_the_same_state  # noqa: F821
del test_subscription_events_in_reverse_and_twice_end_in_the_same_state  # noqa: F821
del test_role_given_by_hand_is_never_removed  # noqa: F821
del test_subscription_partial_refund_keeps_access  # noqa: F821
del test_license_unknown_key_runs_the_same_queries_as_a_known_one  # noqa: F821
del test_inbox_applies_a_batch_in_one_commit  # noqa: F821
del test_checkout_event_costs_at_most_the_pinned_statements  # noqa: F821
