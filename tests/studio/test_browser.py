"""The studio in a real browser (headless Chromium through Selenium): queue a clip from the
library page and watch it finish there, open it in the viewer, check that the points drawn are
the file's actions, drag one, save, and read the file back. Screenshots of both pages go to
FSRUN_STUDIO_SCREENSHOTS when it names a folder (docs/ keeps the ones README shows).

Needs Debian's `chromium` and `chromium-driver` (.ci/run installs them); skipped without them,
failed instead with FSRUN_REQUIRE_BROWSER=1."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from fsrun.files.funscript import read_funscript
from fsrun.groundtruth.seeds import seed
from fsrun.groundtruth.synth.cli import write_clips
from fsrun.studio.viewer import EDITED_BY

from .conftest import serve

CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromedriver")


def _browser_or_skip():
    missing = [p for p in CHROMIUM if not Path(p).exists()]
    try:
        from selenium import webdriver  # noqa: PLC0415
    except ImportError:
        missing.append("selenium")
    if missing:
        why = f"needs {', '.join(missing)} (apt-get install chromium chromium-driver)"
        if os.environ.get("FSRUN_REQUIRE_BROWSER") == "1":
            pytest.fail(f"FSRUN_REQUIRE_BROWSER=1 but the browser test {why}")
        pytest.skip(why)
    from selenium.webdriver.chrome.service import Service  # noqa: PLC0415

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM[0]
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,1000", "--mute-audio", "--hide-scrollbars"):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(CHROMIUM[1]), options=options)


@pytest.fixture
def shelf(tmp_path: Path) -> Path:
    """A small library: one 12 s clip to script and edit, two short ones beside it."""
    folder = tmp_path / "shelf"
    write_clips(folder, 1, 12.0, ["30"], ["h264"], seed("tests-studio", 10), (320, 240))
    write_clips(folder, 2, 3.0, ["30"], ["h264"], seed("tests-studio", 20), (96, 72))
    for truth in sorted(folder.glob("*.truth.funscript"))[1:]:
        truth.unlink()  # the library then shows both states
    return folder


@pytest.fixture
def served(shelf: Path, demo_package: Path, tmp_path: Path):
    with serve(shelf, demo_package, tmp_path / "cache") as (address, _):
        yield address


def _screenshot(driver, name: str) -> None:
    folder = os.environ.get("FSRUN_STUDIO_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(folder) / name))


def _queue_one(driver, wait, address: str, name: str) -> str:
    """Open the library, wait for the video's row and its duration, queue it; the row's CSS
    selector."""
    from selenium.webdriver.common.by import By  # noqa: PLC0415
    from selenium.webdriver.support import expected_conditions as ec  # noqa: PLC0415

    from selenium.common.exceptions import StaleElementReferenceException  # noqa: PLC0415

    def row_text(d) -> str:  # the library redraws its rows when headers arrive
        try:
            return d.find_element(By.CSS_SELECTOR, row).text
        except StaleElementReferenceException:
            return "..."

    driver.get(address)
    row = f'#videos tr[data-video="{name}"]'
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, row)))
    wait.until(lambda d: "..." not in row_text(d))  # durations
    driver.find_element(By.CSS_SELECTOR, f"{row} input.pick").click()
    driver.find_element(By.ID, "queue").click()
    return row


def test_queue_review_edit_and_save_in_a_browser(served: str, shelf: Path) -> None:
    from selenium.webdriver.common.action_chains import ActionChains  # noqa: PLC0415
    from selenium.webdriver.common.by import By  # noqa: PLC0415
    from selenium.webdriver.support import expected_conditions as ec  # noqa: PLC0415
    from selenium.webdriver.support.ui import WebDriverWait  # noqa: PLC0415

    name = sorted(p.name for p in shelf.glob("*.mp4") if "_860010_" in p.name)[0]
    script = (shelf / name).with_suffix(".funscript")
    driver = _browser_or_skip()
    wait = WebDriverWait(driver, 60)
    try:
        row = _queue_one(driver, wait, served, name)
        # The page hears the job finish (server-sent events), and the library shows the script.
        wait.until(ec.presence_of_element_located(
            (By.CSS_SELECTOR, '#jobs tr[data-status="done"]')))
        wait.until(lambda d: "fsrun:" in d.find_element(By.CSS_SELECTOR, f"{row} td.script").text)
        assert script.exists()
        written = read_funscript(script)["actions"]
        _screenshot(driver, "studio-library.png")

        driver.find_element(By.CSS_SELECTOR, f"{row} a.open").click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#timeline circle.point")) > 0)
        driver.execute_script("studio.view.span = 12000; studio.view.start = 0;")
        driver.execute_script("window.dispatchEvent(new Event('resize'))")
        circles = driver.find_elements(By.CSS_SELECTOR, "#timeline circle.point")
        drawn = [{"at": int(float(c.get_attribute("data-at"))),
                  "pos": int(float(c.get_attribute("data-pos")))} for c in circles]
        assert drawn == written
        # The model's track redrawn with the script's own options is the same script.
        assert driver.execute_script("return studio.view.data.actions") == written
        raw_points = driver.execute_script("return studio.view.data.raw.at.length")
        assert raw_points == 360
        # Compare mode: the clip's truth drawn over the script, with r and lag.
        from selenium.webdriver.support.ui import Select  # noqa: PLC0415

        Select(driver.find_element(By.ID, "compare")).select_by_value("truth")
        wait.until(lambda d: "Pearson r" in d.find_element(By.ID, "agreement").text)
        r = float(driver.find_element(By.ID, "agreement").text.split()[2].rstrip(","))
        assert 0.5 < r <= 1.0  # the demo model follows the synthetic clips it was made for
        _screenshot(driver, "studio-viewer.png")

        # Drag the third point down by a quarter of the plot; nothing else moves.
        index = 2
        driver.execute_script("document.querySelector('#timeline').scrollIntoView("
                              "{block: 'center'})")
        target = driver.find_elements(By.CSS_SELECTOR, "#timeline circle.point")[index]
        ActionChains(driver).click_and_hold(target).move_by_offset(0, 40).release().perform()
        moved = driver.execute_script("return studio.view.actions")
        assert moved[index]["at"] == written[index]["at"]
        assert moved[index]["pos"] < written[index]["pos"] or written[index]["pos"] == 0
        assert moved[:index] + moved[index + 1:] == written[:index] + written[index + 1:]
        driver.find_element(By.ID, "undo").click()
        assert driver.execute_script("return studio.view.actions") == written
        driver.find_element(By.ID, "redo").click()
        assert driver.execute_script("return studio.view.actions") == moved

        # A redraw from the model with unsaved edits asks first: "keep" puts the control back
        # and the edits stay; "go on" redraws, and one Undo returns the edited script.
        change = ("setTimeout(() => { const a = document.querySelector('#min_amplitude'); "
                  "a.value = '30'; a.dispatchEvent(new Event('change')); }, 0)")
        driver.execute_script(change)
        wait.until(ec.alert_is_present())
        driver.switch_to.alert.dismiss()
        assert driver.execute_script("return studio.view.actions") == moved
        wait.until(lambda d: d.find_element(By.ID, "min_amplitude").get_attribute("value") != "30")
        driver.execute_script(change)
        wait.until(ec.alert_is_present())
        driver.switch_to.alert.accept()
        wait.until(lambda d: d.execute_script("return studio.view.actions") != moved)
        assert driver.execute_script("return studio.view.edited") is False
        driver.find_element(By.ID, "undo").click()
        assert driver.execute_script("return studio.view.actions") == moved

        # The speed heatmap under the timeline: a coloured stroke between each two points.
        fills = driver.execute_script("return [...document.querySelectorAll('#heatmap rect.heat')]"
                                      ".map((r) => r.getAttribute('fill'))")
        assert len(fills) == len(moved) - 1 and len(set(fills)) > 1

        # OpenFunscripter's keys: a digit sets a point at the cursor, up moves it, shift+right
        # jumps to the next point.
        from selenium.webdriver.common.keys import Keys  # noqa: PLC0415

        gaps = [(b["at"] - a["at"], (a["at"] + b["at"]) // 2) for a, b in zip(moved, moved[1:])]
        free = max(gaps)[1]  # the middle of the widest stroke: no point there yet
        driver.execute_script(f"studio.view.cursor = {free}; document.activeElement.blur();")
        actions = ActionChains(driver)
        actions.send_keys("7").perform()
        wait.until(lambda d: {"at": free, "pos": 70} in d.execute_script(
            "return studio.view.actions"))
        keyed = driver.execute_script("return studio.view.actions")
        assert len(keyed) == len(moved) + 1
        ActionChains(driver).send_keys(Keys.ARROW_UP).perform()
        wait.until(lambda d: {"at": free, "pos": 71} in d.execute_script(
            "return studio.view.actions"))
        ActionChains(driver).key_down(Keys.SHIFT).send_keys(Keys.ARROW_RIGHT) \
            .key_up(Keys.SHIFT).perform()
        after = min(p["at"] for p in keyed if p["at"] > free)
        assert driver.execute_script("return studio.view.cursor") == after
        driver.find_element(By.ID, "undo").click()
        driver.find_element(By.ID, "undo").click()
        assert driver.execute_script("return studio.view.actions") == moved

        driver.find_element(By.ID, "save-script").click()  # a script exists: the page asks first
        wait.until(ec.alert_is_present())
        driver.switch_to.alert.accept()
        wait.until(lambda d: "saved" in d.find_element(By.ID, "status").text)
        saved = read_funscript(script)
        assert saved["actions"] == moved
        assert saved["metadata"]["generator"]["name"] == EDITED_BY
        # The script it replaced is kept beside it, and the page says where.
        assert read_funscript(script.with_name(script.name + ".bak"))["actions"] == written
        assert script.name + ".bak" in driver.find_element(By.ID, "status").text

    finally:
        driver.quit()


def test_a_crop_box_is_drawn_on_a_still_frame_video(shelf: Path, demo_package: Path,
                                                    tmp_path: Path) -> None:
    """An AVI is shown as still frames: a drag on the picture draws the crop box (it used to
    start the browser's own image drag)."""
    import av  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415
    from selenium.webdriver.common.action_chains import ActionChains  # noqa: PLC0415
    from selenium.webdriver.common.by import By  # noqa: PLC0415
    from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: PLC0415

    clip = shelf / "camera.avi"
    with av.open(str(clip), "w", format="avi") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for i in range(50):
            image = np.full((240, 320, 3), (i * 5) % 255, dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))
    with serve(shelf, demo_package, tmp_path / "cache2") as (address, _):
        driver = _browser_or_skip()
        wait = WebDriverWait(driver, 60)
        try:
            driver.get(address.replace("/?", "/viewer?video=camera.avi&"))
            wait.until(lambda d: d.execute_script("return studio.view.data !== null"))
            picture = driver.find_element(By.CSS_SELECTOR, "#picture img")
            assert picture.get_attribute("draggable") == "false"
            Select(driver.find_element(By.ID, "crop")).select_by_value("box")
            width, height = picture.size["width"], picture.size["height"]
            ActionChains(driver).move_to_element_with_offset(picture, -width // 4, -height // 4) \
                .click_and_hold().move_by_offset(width // 2, height // 2).release().perform()
            box = driver.execute_script("return studio.view.box")
            # half the shown picture each way: about half of the stored 320x240
            assert box is not None and 140 <= box[2] <= 180 and 100 <= box[3] <= 140, box
            assert driver.find_element(By.ID, "cropbox").is_displayed()
        finally:
            driver.quit()


def test_cancel_takes_one_press_and_nothing_overlaps_at_three_widths(served: str,
                                                                     shelf: Path) -> None:
    from selenium.webdriver.common.by import By  # noqa: PLC0415
    from selenium.webdriver.support import expected_conditions as ec  # noqa: PLC0415
    from selenium.webdriver.support.ui import WebDriverWait  # noqa: PLC0415

    # A clip long enough (3 minutes of small frames) that the job still encodes when Cancel
    # is pressed, on any machine: cancelling is checked after every encoder batch.
    write_clips(shelf, 1, 180.0, ["30"], ["h264"], seed("tests-studio", 30), (64, 48))
    name = sorted(p.name for p in shelf.glob("*.mp4") if "_860030_" in p.name)[0]
    viewed = sorted(p.name for p in shelf.glob("*.mp4") if "_860010_" in p.name)[0]
    driver = _browser_or_skip()
    wait = WebDriverWait(driver, 120)
    try:
        _queue_one(driver, wait, served, name)
        running = '#jobs tr[data-status="running"] button.cancel'
        progress = ("const c = document.querySelector('#jobs tr[data-status=\"running\"] "
                    "td.progress'); return c ? c.textContent : '';")
        wait.until(lambda d: "frames" in d.execute_script(progress))
        driver.find_element(By.CSS_SELECTOR, running).click()  # once, while progress arrives
        wait.until(ec.presence_of_element_located(
            (By.CSS_SELECTOR, '#jobs tr[data-status="cancelled"]')))

        rect = "const r = document.querySelector(arguments[0]).getBoundingClientRect(); " \
               "return [r.left, r.top, r.right, r.bottom];"
        controls = ["#stride", "#min_amplitude", "#rdp_epsilon", "#crop", "#save-crop",
                    "#compare", "#undo", "#redo", "#save-script", "#save-truth"]
        for width in (1024, 1400, 1920):
            driver.set_window_size(width, 1000)
            driver.get(served.replace("/?", f"/viewer?video={viewed}&"))
            wait.until(lambda d: d.execute_script("return studio.view.data !== null"))
            picture = driver.execute_script(rect, "#picture")
            boxes = {c: driver.execute_script(rect, c) for c in controls}
            for control, box in boxes.items():
                apart = box[0] >= picture[2] or box[2] <= picture[0] or \
                    box[1] >= picture[3] or box[3] <= picture[1]
                assert apart, (width, control, box, picture)
            timeline = driver.execute_script(rect, "#timeline")
            assert all(box[3] <= timeline[1] for box in boxes.values()), width
            assert picture[2] - picture[0] > 300  # the video scales to its column
    finally:
        driver.quit()


@pytest.mark.long
def test_train_from_the_page_then_script_with_the_trained_model(library: Path,
                                                                 demo_package: Path,
                                                                 tmp_path: Path) -> None:
    """Train on the folder's labels (three clips with truth files) from the library page
    (fsexport[torch]), pick the trained model, queue a clip, and read its script: end to end
    as a person clicks it."""
    pytest.importorskip("torch", reason="training needs fsexport[torch]")
    from selenium.webdriver.common.by import By  # noqa: PLC0415
    from selenium.webdriver.support import expected_conditions as ec  # noqa: PLC0415
    from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: PLC0415

    clips = sorted(library.glob("*.mp4"))
    assert len(clips) == 3 and all(c.with_suffix(".truth.funscript").exists() for c in clips)
    name = clips[-1].name
    with serve(library, demo_package, tmp_path / "cache") as (address, _):
        driver = _browser_or_skip()
        wait = WebDriverWait(driver, 900)
        try:
            driver.get(address)
            wait.until(lambda d: d.find_element(By.ID, "epochs").get_attribute("value") != "")
            epochs = driver.find_element(By.ID, "epochs")
            epochs.clear()
            epochs.send_keys("1")
            driver.find_element(By.ID, "train").click()
            wait.until(lambda d: "done" in d.find_element(By.ID, "train-status").text)
            Select(driver.find_element(By.ID, "model-pick")).select_by_value("trained")
            wait.until(lambda d: "trained" in d.find_element(By.ID, "model").text)
            row = f'#videos tr[data-video="{name}"]'
            driver.find_element(By.CSS_SELECTOR, f"{row} input.pick").click()
            driver.find_element(By.ID, "queue").click()
            wait.until(ec.presence_of_element_located(
                (By.CSS_SELECTOR, '#jobs tr[data-status="done"]')))
            written = read_funscript(clips[-1].with_suffix(".funscript"))
            assert written["metadata"]["model"]["name"] == "trained.fsmodel"
        finally:
            driver.quit()


def test_links_show_as_rows_and_the_old_tab_survives_a_restart(shelf: Path, demo_package: Path,
                                                              tmp_path: Path) -> None:
    """A link out of the folder and a dangling one are rows saying why, the rest lists; after
    Ctrl-C and a new start the open tab keeps working (same port and token, its cookie)."""
    from selenium.webdriver.common.by import By  # noqa: PLC0415
    from selenium.webdriver.support.ui import WebDriverWait  # noqa: PLC0415

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.mp4").write_bytes(b"not for the studio")
    (shelf / "leak.mp4").symlink_to(outside / "secret.mp4")
    (shelf / "gone.mp4").symlink_to(shelf / "nothing.mp4")
    driver = _browser_or_skip()
    wait = WebDriverWait(driver, 60)
    try:
        with serve(shelf, demo_package, tmp_path / "cache") as (address, _):
            driver.get(address)
            wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#videos tbody tr")) == 5)
            leak = driver.find_element(By.CSS_SELECTOR, '#videos tr[data-video="leak.mp4"]')
            assert "out of the folder" in leak.text
            gone = driver.find_element(By.CSS_SELECTOR, '#videos tr[data-video="gone.mp4"]')
            assert "not there" in gone.text
        with serve(shelf, demo_package, tmp_path / "cache") as (again, _):
            assert again == address
            driver.get(address.split("/?")[0] + "/")  # the old tab, no token in the address
            wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#videos tbody tr")) == 5)
            assert "forbidden" not in driver.page_source
    finally:
        driver.quit()


def test_each_axis_keeps_its_own_edits_in_a_browser(shelf: Path, axis_packages,
                                                    tmp_path: Path) -> None:
    """A model of stroke and roll: the axis selector shows, each axis keeps its own points,
    undo and redo, an edit on one stays while the other is shown, and each saves to its file."""
    from selenium.webdriver.common.by import By  # noqa: PLC0415
    from selenium.webdriver.support import expected_conditions as ec  # noqa: PLC0415
    from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: PLC0415

    name = sorted(p.name for p in shelf.glob("*.mp4") if "_860020_" in p.name)[0]
    script = (shelf / name).with_suffix(".funscript")
    driver = _browser_or_skip()
    wait = WebDriverWait(driver, 60)
    try:
        with serve(shelf, axis_packages[1], tmp_path / "cache") as (address, _):
            row = _queue_one(driver, wait, address, name)
            wait.until(ec.presence_of_element_located(
                (By.CSS_SELECTOR, '#jobs tr[data-status="done"]')))
            wait.until(lambda d: "roll" in d.find_element(By.CSS_SELECTOR, f"{row} td.script").text)
            moved = read_funscript(script)["actions"]
            driver.find_element(By.CSS_SELECTOR, f"{row} a.open").click()
            wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#timeline circle.point")) > 0)
            # Each axis keeps its own points, undo and redo, and
            # an edit on one stays while the other is shown.
            assert driver.find_element(By.ID, "axis-box").is_displayed()
            Select(driver.find_element(By.ID, "axis")).select_by_value("roll")
            wait.until(lambda d: d.execute_script("return studio.view.data && studio.view.data.axis")
                       == "roll")
            roll_drawn = driver.execute_script("return studio.view.actions")
            assert roll_drawn == read_funscript(script.with_name(
                script.name.replace(".funscript", ".roll.funscript")))["actions"]
            driver.execute_script("remember(); studio.view.actions[0].pos = 3; draw();")
            Select(driver.find_element(By.ID, "axis")).select_by_value("stroke")
            wait.until(lambda d: d.execute_script("return studio.view.axis") == "stroke")
            assert driver.execute_script("return studio.view.actions") == moved
            assert driver.execute_script("return anyEdited()") is True  # the roll's edit counts
            Select(driver.find_element(By.ID, "axis")).select_by_value("roll")
            wait.until(lambda d: d.execute_script("return studio.view.axis") == "roll")
            assert driver.execute_script("return studio.view.actions[0].pos") == 3
            driver.find_element(By.ID, "save-script").click()
            wait.until(ec.alert_is_present())
            driver.switch_to.alert.accept()
            wait.until(lambda d: "roll.funscript" in d.find_element(By.ID, "status").text)
            roll_saved = read_funscript(script.with_name(
                script.name.replace(".funscript", ".roll.funscript")))
            assert roll_saved["actions"][0]["pos"] == 3 and roll_saved["metadata"]["axis"] == "roll"
            assert read_funscript(script)["actions"] == moved  # the stroke's file as saved
            assert driver.execute_script("return anyEdited()") is False
    finally:
        driver.quit()
