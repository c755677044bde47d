"""The web console in a real Chromium, against two real linked sites with real mounts.

Signs in with the one-time URL `meridian console` prints, then: a file written at west shows
up in east's Files view without a reload; a rule with an error shows its line:column, fixed it
previews the files it matches, added it is in `meridian objective list`; a cache job started
from the Files view runs to completion with its progress shown; the browser logs no error.
A request without a session is refused. Set MERIDIAN_CONSOLE_SHOTS=DIR to keep a screenshot of
each page there (docs/console/ holds the ones the README shows).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from meridian.console.routes import human_size
from meridian.flame.openclip import new_clip
from meridian.objectives.language import ObjectiveError, parse
from tests.browser import chromium, console_errors, missing_browser
from tests.sitehelpers import RunningSite, api_url, init_linked, meridian, tls_verify, wait_for

BAD_RULE = "IF FNMATCH(\"./shots/*.txt\" PATH)\nTHEN {SLO('place-on-local-volumes')}"
GOOD_RULE = "IF FNMATCH(\"./shots/*.txt\",PATH)\nTHEN {SLO('place-on-local-volumes')}"
FRAME_BYTES = 200_000
SECOND_RULE = "IF FNMATCH(\"./shots/*.exr\",PATH) THEN {SLO('place-on-local-volumes')}"


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    missing = missing_browser()
    if missing:
        pytest.skip(f"the console's browser tests need {', '.join(missing)} (make test "
                    "installs them)")
    profile = tmp_path / "chromium-profile"
    certs = [tmp_path / name / "tls" / "site.crt" for name in ("east", "west")]
    holder: dict[str, Any] = {}

    class Late:
        """The browser starts once the sites exist (their certificates are pinned)."""

        def start(self) -> Any:
            holder["cm"] = chromium(profile, [c for c in certs if c.exists()])
            holder["driver"] = holder["cm"].__enter__()
            return holder["driver"]

    yield Late()
    if "cm" in holder:
        holder["cm"].__exit__(None, None, None)


def base_of(site: RunningSite) -> str:
    return api_url(site).removesuffix("/api/v1")


def shoot(driver: Any, name: str) -> None:
    folder = os.environ.get("MERIDIAN_CONSOLE_SHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        time.sleep(0.5)
        driver.save_screenshot(str(Path(folder) / f"{name}.png"))


def text_of(driver: Any, css: str) -> str:
    """The text of the elements ``css`` selects ("" while htmx is swapping them)."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    try:
        return " ".join(element.text for element in driver.find_elements(By.CSS_SELECTOR, css))
    except StaleElementReferenceException:
        return ""


def placement_state(site: RunningSite, path: str) -> str:
    rows = json.loads(meridian("ls", "--placement", "--json", "--config", str(site.config),
                               path).stdout)
    return str(rows[0]["state"])


def test_console_in_chromium(tmp_path: Path, stopper: list[RunningSite], browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    sites = init_linked(tmp_path, ["east", "west"], f"file://{tmp_path / 'bucket'}")
    for site in sites.values():
        stopper.append(site)
        site.start()
    east, west = sites["east"], sites["west"]
    base = base_of(east)

    # nothing of the console without a session: pages, fragments, changes, static files
    with httpx.Client(verify=tls_verify(east), timeout=10) as plain:  # type: ignore[arg-type]
        for method, path in [("GET", "/console/sites"), ("GET", "/console/fragments/files"),
                             ("GET", "/console/static/vendor/htmx.min.js"),
                             ("POST", "/console/objectives"), ("GET", "/console/stream")]:
            answer = plain.request(method, base + path)
            assert answer.status_code == 401, (method, path, answer.status_code)
            assert "meridian console --config" in answer.text  # how to sign in, nothing else

    shots = west.mount / "shots"
    shots.mkdir()
    for name in ("a.exr", "b.exr"):
        (shots / name).write_bytes(os.urandom(3_000_000))
    (shots / "notes.txt").write_bytes(b"notes\n")
    flame = west.mount / "hs-mount" / "project" / "sq010" / "sh010" / "flame"
    flame.mkdir(parents=True)
    plates = flame.parent / "plates"
    plates.mkdir()
    for frame in (1001, 1002, 1003):
        (plates / f"sh010_plate.{frame}.exr").write_bytes(os.urandom(FRAME_BYTES))
    new_clip("sh010", str(west.mount / "hs-mount/project/sq010/sh010/plates/"
                          "sh010_plate.[1001-1003].exr")).write(flame / "sh010.clip")
    east_notes = east.mount / "shots" / "notes.txt"
    wait_for(east_notes.exists, what="west's files at east")

    url = meridian("console", "--config", str(east.config)).stdout.strip()
    assert url.startswith(base + "/console/signin?token="), url
    driver = browser.start()
    driver.get(url)
    wait_for(lambda: driver.current_url == base + "/console/sites", what="the sites page")
    cookie = driver.get_cookie("meridian_console")
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"
    wait_for(lambda: "connected" in text_of(driver, "tr[data-site='west']"),
             what="west's link shown connected")
    assert "reachable" in text_of(driver, "#bucket")
    wait_for(lambda: "All digests agree" in text_of(driver, "#digests"),
             what="east and west's digests shown equal")
    shoot(driver, "sites")
    with httpx.Client(verify=tls_verify(east), timeout=10) as plain:  # type: ignore[arg-type]
        again = plain.get(url, follow_redirects=False)
        assert again.status_code == 401  # the sign-in URL is good once
        forged = plain.post(base + "/console/objectives", data={"rule": GOOD_RULE},
                            headers={"Cookie": f"meridian_console={cookie['value']}"})
        assert forged.status_code == 403  # a session without its CSRF token changes nothing

    # Files: a file written at west appears at east without a reload
    driver.get(base + "/console/files?path=/shots")
    driver.execute_script("window.notReloaded = true;")
    assert "new.exr" not in text_of(driver, "#listing")
    time.sleep(1.0)  # the page's event stream is open
    (shots / "new.exr").write_bytes(os.urandom(1000))
    wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, "tr[data-name='new.exr']"),
             what="new.exr in east's Files view")
    assert driver.execute_script("return window.notReloaded === true;")
    wait_for(lambda: human_size(1000) in text_of(driver, "tr[data-name='new.exr']"),
             what="new.exr's content at east too")
    driver.find_element(By.CSS_SELECTOR, "tr[data-name='notes.txt'] a.file").click()
    wait_for(lambda: "Every rule" in text_of(driver, "#detail"), what="the file's explanation")
    assert "west" in text_of(driver, "#detail")

    # a cache job from the Files view, its progress to the end
    assert placement_state(east, "./shots/a.exr") == "bucket"
    for name in ("a.exr", "b.exr"):
        driver.find_element(By.CSS_SELECTOR, f"tr[data-name='{name}'] input").click()
    driver.find_element(By.ID, "cache-selected").click()
    wait_for(lambda: "finished" in text_of(driver, ".job"), what="the cache job finished")
    assert "2/2" in text_of(driver, ".job .progress")
    assert placement_state(east, "./shots/a.exr") in ("local", "both")
    wait_for(lambda: text_of(driver, "tr[data-name='a.exr'] .state") in ("local", "both"),
             what="the listing showing a.exr here once the job is done")
    shoot(driver, "files")

    # Objectives: the editor locates the error, previews the fixed rule, adds it
    driver.get(base + "/console/objectives")
    editor = driver.find_element(By.ID, "rule")
    editor.send_keys(BAD_RULE)
    with pytest.raises(ObjectiveError) as expected:
        parse(BAD_RULE)
    wait_for(lambda: str(expected.value) in text_of(driver, "#rule-error"),
             what="the parse error in the editor")
    located = driver.find_element(By.ID, "rule-error")
    assert (located.get_attribute("data-line"), located.get_attribute("data-column")) == (
        str(expected.value.line), str(expected.value.column))
    editor.send_keys(Keys.CONTROL, "a")
    editor.send_keys(GOOD_RULE)
    wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, "#preview tr.match"),
             what="the preview of the fixed rule")
    previewed = {row.text.split()[0] for row in
                 driver.find_elements(By.CSS_SELECTOR, "#preview tr.match")}
    assert previewed == {"./shots/notes.txt"}
    assert "place-on-local-volumes" in text_of(driver, "#preview")
    shoot(driver, "objectives")
    driver.find_element(By.ID, "add-rule").click()
    wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, "#rule-list li.rule"),
             what="the rule in the list")
    listed = meridian("objective", "list", "--config", str(east.config)).stdout
    assert "./shots/*.txt" in listed

    def order() -> list[str]:
        out = meridian("objective", "list", "--json", "--config", str(east.config)).stdout
        return [rule["text"] for rule in json.loads(out)]

    editor = driver.find_element(By.ID, "rule")
    editor.send_keys(Keys.CONTROL, "a")
    editor.send_keys(SECOND_RULE)
    wait_for(lambda: driver.find_elements(By.ID, "rule-ok"), what="the second rule checked")
    driver.find_element(By.ID, "add-rule").click()
    wait_for(lambda: len(driver.find_elements(By.CSS_SELECTOR, "#rule-list li.rule")) == 2,
             what="two rules listed")
    assert order() == [GOOD_RULE, SECOND_RULE]
    driver.find_elements(By.CSS_SELECTOR, "#rule-list li.rule")[1].find_element(
        By.XPATH, ".//button[text()='up']").click()
    wait_for(lambda: order() == [SECOND_RULE, GOOD_RULE], what="the second rule moved up")
    driver.find_elements(By.CSS_SELECTOR, "#rule-list li.rule")[0].find_element(
        By.CSS_SELECTOR, "button.remove").click()
    wait_for(lambda: order() == [GOOD_RULE], what="the rule removed")
    wait_for(lambda: len(driver.find_elements(By.CSS_SELECTOR, "#rule-list li.rule")) == 1,
             what="one rule listed")

    # Flame and Activity render, live
    driver.get(base + "/console/flame")
    wait_for(lambda: "v000" in text_of(driver, ".clip[data-shot='sh010']"),
             what="the clip's version on the Flame page")
    assert "newest change from west" in text_of(driver, ".clip[data-shot='sh010'] .arrival")
    frame = "./hs-mount/project/sq010/sh010/plates/sh010_plate.1002.exr"
    assert placement_state(east, frame) == "bucket"
    driver.find_element(By.CSS_SELECTOR, ".clip[data-shot='sh010'] li.version button").click()
    wait_for(lambda: "finished" in text_of(driver, ".job"), what="the version cached")
    assert "3/3" in text_of(driver, ".job .progress")
    assert placement_state(east, frame) in ("local", "both")
    assert human_size(3 * FRAME_BYTES) in text_of(driver, ".job")  # the frames were fetched
    shoot(driver, "flame")
    driver.get(base + "/console/activity?glob=./shots/*")
    time.sleep(1.0)
    (shots / "live.exr").write_bytes(b"x")
    wait_for(lambda: "/shots/live.exr" in text_of(driver, "#feed"), what="the live feed")
    assert "/hs-mount" not in text_of(driver, "#feed")  # the glob filters
    shoot(driver, "activity")

    assert console_errors(driver) == []
