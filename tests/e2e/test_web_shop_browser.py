"""The web shop in a real browser (headless Chromium through selenium) against `shopbot run`,
the fake Discord (OAuth2 authorize page) and the fake Stripe (hosted Checkout page, webhooks
pushed to the bot). Screenshots of the shop, product and success pages at 1280 and 390 px,
light and dark, go to artefacts/screens/."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from selenium import webdriver
from selenium.common.exceptions import (
    NoSuchElementException,
    StaleElementReferenceException,
    TimeoutException,
    WebDriverException,
)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.fakes.discord import FakeDiscord
from tests.fakes.stripe import FakeStripe, WebhookSender
from tests.harness import WEBHOOK_SECRET, BotProcess
from tests.shop import ADMIN, FRIEND, Shop, text_of

ROOT = Path(__file__).resolve().parents[2]
SCREENS = ROOT / "artefacts" / "screens"
NEWCOMER = 5005  # a Discord user who is not in the server


@pytest.fixture(scope="module")
def driver() -> Iterator[webdriver.Chrome]:
    """One headless Chromium for the whole module."""
    if shutil.which("chromedriver") is None or shutil.which("chromium") is None:
        subprocess.run(["bash", str(ROOT / ".ci" / "system-packages")], check=True)
    profile = tempfile.mkdtemp(prefix="shopbot-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    service = Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    chrome = webdriver.Chrome(options=options, service=service)
    chrome.set_page_load_timeout(30)
    try:
        yield chrome
    finally:
        chrome.quit()
        shutil.rmtree(profile, ignore_errors=True)


class Page:
    """Selenium calls off the event loop (the fakes answer the browser on this loop)."""

    def __init__(self, driver: webdriver.Chrome) -> None:
        self.driver = driver

    async def run(self, call: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.to_thread(call, *args)

    async def open(self, url: str) -> None:
        await self.run(self.driver.get, url)

    async def click(self, css: str, timeout: float = 30.0) -> None:
        """Click the element once it is on the page (after a navigation, when it loaded)."""

        def click() -> None:
            try:
                element = WebDriverWait(
                    self.driver,
                    timeout,
                    poll_frequency=0.1,
                    ignored_exceptions=(WebDriverException,),  # also a page mid-reload
                ).until(lambda d: d.find_element(By.CSS_SELECTOR, css))
            except TimeoutException:
                body = self.driver.find_element(By.TAG_NAME, "body").text
                raise AssertionError(
                    f"no {css} on {self.driver.current_url}:\n{body[:1500]}"
                ) from None
            element.click()

        await self.run(click)

    async def wait_text(self, text: str, timeout: float = 30.0) -> str:
        seen: list[str] = [""]

        def has_text(d: webdriver.Chrome) -> bool:
            try:
                seen[0] = d.find_element(By.TAG_NAME, "body").text
            except WebDriverException:  # the page is reloading (the pending page refreshes)
                return False  # e.g. "Node with given id does not belong to the document"
            return text in seen[0]

        def until() -> str:
            try:
                WebDriverWait(
                    self.driver,
                    timeout,
                    poll_frequency=0.1,
                    ignored_exceptions=(StaleElementReferenceException, NoSuchElementException),
                ).until(has_text)
            except TimeoutException:
                raise AssertionError(
                    f"{text!r} not on {self.driver.current_url}:\n{seen[0][:1500]}"
                ) from None
            return seen[0]

        return str(await self.run(until))

    async def shoot(self, name: str) -> None:
        """Screenshots at 1280 and 390 px wide, light and dark."""

        def capture() -> None:
            SCREENS.mkdir(parents=True, exist_ok=True)
            for width in (1280, 390):
                for scheme in ("light", "dark"):
                    self.driver.execute_cdp_cmd(
                        "Emulation.setEmulatedMedia",
                        {"features": [{"name": "prefers-color-scheme", "value": scheme}]},
                    )
                    self.driver.execute_cdp_cmd(
                        "Emulation.setDeviceMetricsOverride",
                        {
                            "width": width,
                            "height": 900 if width > 500 else 844,
                            "deviceScaleFactor": 1,
                            "mobile": width < 500,
                        },
                    )
                    self.driver.save_screenshot(str(SCREENS / f"{name}-{width}-{scheme}.png"))
                    overflow = self.driver.execute_script(
                        "return document.documentElement.scrollWidth > window.innerWidth"
                    )
                    assert not overflow, f"{name} scrolls sideways at {width} px"
            self.driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
            self.driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})

        await self.run(capture)


@asynccontextmanager
async def web_shop(
    tmp_path: Path,
    discord: FakeDiscord,
    stripe: FakeStripe,
    *,
    login: bool,
    screening: bool = False,
) -> AsyncIterator[Shop]:
    """A guild with a VIP product and `shopbot run` serving the web shop."""
    guild = discord.add_guild(name="Night Owls", owner_id=ADMIN)
    guild.screening = screening
    vip = discord.add_role(guild.id, "VIP", position=2)
    high = discord.add_role(guild.id, "Mods", position=50)
    for user in (ADMIN, FRIEND):
        discord.add_member(guild.id, user, dispatch=False)
    env = {}
    bot = BotProcess(tmp_path, discord, stripe, [guild.id])
    if login:
        env = {
            "SHOPBOT_DISCORD__CLIENT_SECRET": discord.client_secret,
            "SHOPBOT_DISCORD__OAUTH_AUTHORIZE_URL": discord.oauth_authorize_url,
        }
        discord.add_redirect_uri(f"{bot.url}/oauth/callback")
    bot.env = env
    stripe.hosted_checkout = True
    stripe.push_webhooks(f"{bot.url}/webhooks/stripe", WEBHOOK_SECRET)
    sender = WebhookSender(f"{bot.url}/webhooks/stripe", WEBHOOK_SECRET)
    try:
        await bot.start()
        await discord.wait_for(
            lambda: guild.id in discord.synced_commands or str(guild.id) in discord.synced_commands,
            timeout=10,
            what="commands synced",
        )
        shop = Shop(discord, stripe, bot, sender, guild.id, vip.id, high.id)
        await shop.add_product(
            "VIP", "9.99", description="Members-only channels, weekly events and the VIP role."
        )
        await shop.add_product("Supporter", "4.00", kind="subscription", interval="month")
        yield shop
    finally:
        await bot.stop()
        await sender.close()


async def test_browser_buyer_logs_in_pays_and_is_added_to_the_server(
    driver: webdriver.Chrome, tmp_path: Path, fake_discord: FakeDiscord, fake_stripe: FakeStripe
) -> None:
    """Issue 11: someone not in the server opens /, picks a product, logs in with Discord,
    pays on Stripe's page and lands on a success page saying they were added; Discord saw
    the add-member call with the product's role, and they hold it."""
    async with web_shop(tmp_path, fake_discord, fake_stripe, login=True) as shop:
        page = Page(driver)
        fake_discord.oauth_user = NEWCOMER
        await page.open(shop.bot.url + "/")
        await page.wait_text("Members-only channels")
        await page.shoot("shop")
        await page.click("a.button[href$='/1']")
        await page.wait_text("Log in with Discord to buy")
        await page.shoot("product")
        await page.click("a.button[href^='/login']")
        await page.wait_text("Authorize")
        await page.click("#authorize")
        await page.wait_text("Logged in as")
        await page.click("form[action$='/buy'] button")
        await page.click("#pay")
        body = await page.wait_text("You were added to Night Owls")
        assert "@VIP" in body and "9.99 USD" in body
        await page.shoot("success-joined")
        joins = [op for op in fake_discord.joins if op.user_id == NEWCOMER]
        assert joins and [str(role) for role in joins[0].roles] == [str(shop.vip_role)]
        await shop.wait(lambda: shop.has_role(NEWCOMER), "the VIP role")
        assert shop.bot.scalar("SELECT COUNT(*) FROM join_tokens") == 0
        assert shop.bot.scalar("SELECT source FROM orders") == "web"


async def test_browser_buyer_without_login_gets_a_claim_code_used_once(
    driver: webdriver.Chrome, tmp_path: Path, fake_discord: FakeDiscord, fake_stripe: FakeStripe
) -> None:
    """Issue 11, no client secret: the browser buys and gets a claim code; /claim by a
    member attaches it once; a second /claim of it and a wrong code get the same answer."""
    async with web_shop(tmp_path, fake_discord, fake_stripe, login=False) as shop:
        page = Page(driver)
        await page.open(f"{shop.bot.url}/shop/{shop.guild_id}/1")
        await page.wait_text("you get a claim code")
        await page.click("form[action$='/buy'] button")
        await page.click("#pay")
        body = await page.wait_text("Your claim code")
        code = shop.bot.scalar("SELECT claim_code FROM orders")
        assert code and code in body and f"/claim {code}" in body
        await page.shoot("success-claim")
        reply = await shop.command(FRIEND, "claim", {"code": code})
        assert "is now yours" in text_of(reply)
        await shop.wait(lambda: shop.has_role(FRIEND), "the VIP role")
        again = text_of(await shop.command(ADMIN, "claim", {"code": code}))
        wrong = text_of(await shop.command(ADMIN, "claim", {"code": "ABCD-EFGH-JKLM-NPQR"}))
        assert "No order here has that claim code" in again
        assert again.split(" Check")[0] == wrong.split(" Check")[0]
        assert shop.bot.scalar("SELECT recipient_id FROM orders") == FRIEND


async def test_web_buyer_under_membership_screening_gets_the_role_after_screening(
    tmp_path: Path, fake_discord: FakeDiscord, fake_stripe: FakeStripe
) -> None:
    """Membership screening on: a logged-in web buyer who pays is added by a PUT that
    carries no roles (Discord would skip screening for a member given a role), joins
    pending, and gets the VIP role only once they pass screening (GUILD_MEMBER_UPDATE
    with pending false). The browser's part is played by an HTTP client."""
    async with web_shop(tmp_path, fake_discord, fake_stripe, login=True, screening=True) as shop:
        fake_discord.oauth_user = NEWCOMER
        jar = aiohttp.CookieJar(unsafe=True)  # cookies for the bot's 127.0.0.1 address
        async with aiohttp.ClientSession(cookie_jar=jar) as web:
            login = await web.get(
                f"{shop.bot.url}/login", params={"next": "/"}, allow_redirects=False
            )
            assert login.status == 302, await login.text()
            async with web.get(login.headers["Location"]) as page:
                fields = dict(re.findall(r"name='([^']+)' value='([^']*)'", await page.text()))
            fields["decision"] = "authorize"
            action = f"{fake_discord.base_url}/oauth2/authorize"
            async with web.post(action, data=fields, allow_redirects=False) as back:
                callback = back.headers["Location"]
            async with web.get(callback, allow_redirects=False) as done:
                assert done.status in (302, 303), await done.text()
            product = f"{shop.bot.url}/shop/{shop.guild_id}/{shop.product_id('VIP')}"
            async with web.get(product) as page:
                html = await page.text()
            found = re.search(r'name="csrf_token" value="([^"]+)"', html)
            assert found and "Logged in as" in html, html
            async with web.post(
                f"{product}/buy", data={"csrf_token": found.group(1)}, allow_redirects=False
            ) as bought:
                assert bought.status == 303, await bought.text()
                session_id = bought.headers["Location"].rstrip("/").split("/")[-1]
        assert shop.bot.scalar("SELECT buyer_id FROM orders") == NEWCOMER
        await shop.pay(session_id)
        await shop.wait(
            lambda: [op for op in fake_discord.joins if op.user_id == NEWCOMER], "the join PUT"
        )
        (join,) = [op for op in fake_discord.joins if op.user_id == NEWCOMER]
        assert join.status == 201 and list(join.roles) == []
        member = fake_discord.member(shop.guild_id, NEWCOMER)
        assert member is not None and member.pending
        await shop.wait(
            lambda: shop.bot.scalar("SELECT COUNT(*) FROM pending_screening") == 1,
            "screening recorded",
        )
        await shop.wait(
            lambda: (
                shop.bot.scalar(
                    "SELECT COUNT(*) FROM delivery_jobs WHERE kind='grant_role'"
                    " AND waiting_for_member=1"
                )
                == 1
            ),
            "the grant waits for screening",
        )
        assert not shop.has_role(NEWCOMER)
        fake_discord.update_member(shop.guild_id, NEWCOMER, pending=False)
        await shop.wait(lambda: shop.has_role(NEWCOMER), "the VIP role after screening")
        assert shop.bot.scalar("SELECT COUNT(*) FROM join_tokens") == 0
