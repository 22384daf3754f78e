"""/shop stats period:30d end to end: the figures and the PNG chart attached to the reply."""

from __future__ import annotations

import io
from pathlib import Path

import aiohttp
from PIL import Image

from bot.charts import HEIGHT, WIDTH
from tests.shop import BUYER, FRIEND, Shop, text_of

ARTEFACTS = Path(__file__).resolve().parents[2] / "artefacts"


async def test_shop_stats_period_30d_attaches_a_png_chart(shop: Shop) -> None:
    """Two sales → the reply names the revenue and attaches revenue.png: content type
    image/png, a sane size, decoding as a WIDTH × HEIGHT PNG, shown as the embed's image."""
    await shop.add_product("VIP", "4.99")
    for buyer in (BUYER, FRIEND):
        await shop.pay(await shop.buy(buyer, "VIP"))
    await shop.wait(lambda: shop.has_role(BUYER) and shop.has_role(FRIEND), "roles granted")
    message = await shop.admin("shop stats", {"period": "30d"})
    text = text_of(message)
    assert "last 30 days" in text and "9.98 USD" in text, text
    assert "2 delivered" in text and "success 100.0 %" in text, text
    (attachment,) = message["attachments"]
    assert attachment["filename"] == "revenue.png"
    assert attachment["content_type"] == "image/png"
    assert 5_000 < attachment["size"] < 500_000
    assert (attachment["width"], attachment["height"]) == (WIDTH, HEIGHT)
    assert message["embeds"][0]["image"]["url"] == "attachment://revenue.png"
    async with aiohttp.ClientSession() as session, session.get(attachment["url"]) as got:
        png = await got.read()
    assert len(png) == attachment["size"]
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.size == (WIDTH, HEIGHT)
    ARTEFACTS.mkdir(exist_ok=True)
    (ARTEFACTS / "shop-stats-30d.png").write_bytes(png)
