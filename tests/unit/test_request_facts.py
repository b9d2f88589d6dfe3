"""Device classification from the User-Agent and the Sec-CH-UA-Mobile client hint."""

from __future__ import annotations

import pytest

from delivery.request_facts import device_from_headers

IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)
IPAD = (
    "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)
ANDROID_PHONE = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36"
)
ANDROID_TABLET = (
    "Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
)
FIREFOX_ANDROID_PHONE = "Mozilla/5.0 (Android 14; Mobile; rv:125.0) Gecko/125.0 Firefox/125.0"
FIREFOX_ANDROID_TABLET = "Mozilla/5.0 (Android 14; Tablet; rv:125.0) Gecko/125.0 Firefox/125.0"
KINDLE = (
    "Mozilla/5.0 (Linux; U; Android 4.0.3; en-us; KFTT Build/IML74K) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Silk/3.68 like Chrome/39.0.2171.93 Safari/537.36"
)
DESKTOP_CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
)
DESKTOP_SAFARI = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Safari/605.1.15"
)
DESKTOP_FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"


@pytest.mark.parametrize(
    ("user_agent", "hint", "device"),
    [
        pytest.param(IPHONE, None, "mobile", id="iphone"),
        pytest.param(IPAD, None, "tablet", id="ipad"),
        pytest.param(ANDROID_PHONE, None, "mobile", id="android-phone"),
        pytest.param(ANDROID_TABLET, None, "tablet", id="android-tablet"),
        pytest.param(FIREFOX_ANDROID_PHONE, None, "mobile", id="firefox-android-phone"),
        pytest.param(FIREFOX_ANDROID_TABLET, None, "tablet", id="firefox-android-tablet"),
        pytest.param(KINDLE, None, "tablet", id="kindle-silk"),
        pytest.param(DESKTOP_CHROME, None, "desktop", id="desktop-chrome"),
        pytest.param(DESKTOP_SAFARI, None, "desktop", id="desktop-safari"),
        pytest.param(DESKTOP_FIREFOX, None, "desktop", id="desktop-firefox"),
        pytest.param(DESKTOP_CHROME, "?1", "mobile", id="mobile-hint-wins"),
        pytest.param(None, "?1", "mobile", id="mobile-hint-without-user-agent"),
        pytest.param(ANDROID_PHONE, "?0", "mobile", id="hint-0-falls-back-to-user-agent"),
        pytest.param(DESKTOP_CHROME, "?0", "desktop", id="hint-0-desktop"),
        pytest.param(None, None, "desktop", id="nothing"),
        pytest.param("", None, "desktop", id="empty-user-agent"),
        pytest.param("curl/8.5.0", None, "desktop", id="curl"),
    ],
)
def test_device_from_headers(user_agent: str | None, hint: str | None, device: str) -> None:
    assert device_from_headers(user_agent, hint) == device
