"""/shop stats [period]: revenue per currency, MRR, subscribers, refunds, deliveries, chart."""

from __future__ import annotations

import io
from datetime import date, timedelta

import pytest
from PIL import Image

from bot.admin_reports import monthly_recurring
from bot.charts import HEIGHT, WIDTH, revenue_chart
from bot.errors import InvalidInput
from bot.shop import ProductDraft
from bot.store.stats import Subscriber
from tests.unit.world import ADMIN, BUYER, GUILD, OTHER, ROLE, World, buy


async def product(world: World, name: str, price: str, **extra: object) -> None:
    draft = ProductDraft(name=name, price=price, role_id=ROLE, **extra)  # type: ignore[arg-type]
    await world.shop.add_product(GUILD, ADMIN, draft)


async def test_shop_stats_period_counts_revenue_per_currency_mrr_and_churn(world: World) -> None:
    """Revenue per currency (never summed), invoices of subscriptions included; MRR with
    yearly and weekly plans normalised to a month; new vs churned; refunds; 30d vs all."""
    await product(world, "Pass", "4.99")
    await product(world, "Pro", "4.99", kind="subscription", interval="month")
    await product(world, "Year", "120.00", currency="eur", kind="subscription", interval="year")
    await product(world, "Weekly", "1.00", kind="subscription", interval="week")
    await buy(world, "pass")  # 40 days before the rest: outside 30d, inside all
    world.advance(days=40)
    second = await buy(world, "pass", user=OTHER)
    pro = await buy(world, "pro")
    await buy(world, "year", user=OTHER)
    await buy(world, "weekly")
    await world.run_jobs()
    assert pro.stripe_subscription_id and second.stripe_payment_intent_id
    world.stripe.cancel_subscription(pro.stripe_subscription_id)
    world.stripe.refund(second.stripe_payment_intent_id)
    await world.flush()
    await world.run_jobs()

    month = await world.services.reports.period_stats(GUILD, "30d")
    assert month.revenue == {"eur": 12000, "usd": 499 + 499 + 100}
    # 120 €/year → 10 €/month; 1 $/week → 52/12 $/month (4.33); Pro was canceled.
    assert month.mrr == {"eur": 1000, "usd": 433}
    assert (month.active_subscribers, month.new_subscriptions, month.churned_subscriptions) == (
        2,
        3,
        1,
    )
    assert month.refunds == {"usd": (1, 499)} and month.disputes == {}
    assert len(month.days) == 30 and month.days[-1] == world.clock.now().date()
    assert month.revenue_per_day["usd"][-1] == 1098 and sum(month.revenue_per_day["usd"]) == 1098
    assert month.revenue_per_day["eur"][-1] == 12000
    assert month.deliveries.get("failed", 0) == 0 and month.success_rate == 1.0
    by_name = {p.name: p for p in month.per_product}
    assert by_name["Pass"].sold == 1 and by_name["Pass"].revenue == {"usd": 499}
    assert by_name["Year"].revenue == {"eur": 12000}

    week = await world.services.reports.period_stats(GUILD, "7d")
    assert len(week.days) == 7 and week.revenue == month.revenue
    everything = await world.services.reports.period_stats(GUILD, "all")
    assert everything.revenue == {"eur": 12000, "usd": 499 * 3 + 100}
    assert everything.days[0] == world.clock.now().date() - timedelta(days=40)
    assert sum(everything.revenue_per_day["usd"]) == 499 * 3 + 100
    assert {p.name: p.sold for p in everything.per_product}["Pass"] == 2
    with pytest.raises(InvalidInput):
        await world.services.reports.period_stats(GUILD, "90d")


async def test_shop_stats_delivery_success_rate_counts_failed_grants(world: World) -> None:
    """A grant Discord refuses is a failed delivery; DMs (receipts) are not deliveries."""
    await product(world, "Pass", "4.99")
    world.discord.refuse.add(BUYER)
    await buy(world, "pass")
    await buy(world, "pass", user=OTHER)
    await world.run_jobs()
    stats = await world.services.reports.period_stats(GUILD, "7d")
    assert stats.deliveries == {"completed": 1, "failed": 1}
    assert stats.success_rate == 0.5


def test_shop_stats_mrr_normalises_intervals_and_skips_trials() -> None:
    """day ×365/12, week ×52/12, month ×1, year ÷12; a trial pays nothing yet."""

    def sub(amount: int, interval: str, status: str | None = "active") -> Subscriber:
        return Subscriber(1, 1, amount, "usd", interval, status)

    assert monthly_recurring([sub(1200, "year")]) == {"usd": 100}
    assert monthly_recurring([sub(300, "week")]) == {"usd": 1300}
    assert monthly_recurring([sub(12, "day")]) == {"usd": 365}
    assert monthly_recurring([sub(500, "month"), sub(500, "month", "past_due")]) == {"usd": 1000}
    assert monthly_recurring([sub(500, "month", "trialing")]) == {}


def test_shop_stats_chart_is_a_png_of_the_expected_size() -> None:
    """The chart: PNG, WIDTH × HEIGHT, with and without revenue."""
    days = [date(2025, 1, 1) + timedelta(days=n) for n in range(30)]
    for series in ({"usd": [n * 100 for n in range(30)], "jpy": [500] * 30}, {}):
        png = revenue_chart(days, series, "Revenue per day")
        image = Image.open(io.BytesIO(png))
        assert image.format == "PNG" and image.size == (WIDTH, HEIGHT)
