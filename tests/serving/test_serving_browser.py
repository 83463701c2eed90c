"""The web page in a real browser: headless Chromium (Debian's chromium + chromium-driver)
driven by Selenium. Upload an image, draw on the canvas, get outputs of the right size, see
which model made them; a screenshot goes into the test's tmp_path."""
from __future__ import annotations

import base64
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.serving.conftest import INFO, decode_png, image, png_bytes, request


def _find(candidates: tuple[str, ...]) -> str | None:
    for c in candidates:
        found = shutil.which(c) or (c if Path(c).is_file() else None)
        if found:
            return found
    return None


# Decided at collection, so a machine without a browser skips before any model is trained.
webdriver = pytest.importorskip(
    "selenium.webdriver", reason="selenium is not installed (pip install -e '.[test]')")
CHROMIUM = _find(("chromium", "/usr/bin/chromium"))
DRIVER = _find(("chromedriver", "/usr/bin/chromedriver"))
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or DRIVER is None,
    reason="no headless browser: install Debian's chromium and chromium-driver "
           "(apt-get install -y chromium chromium-driver; `make browser` and .ci/run do)")


@pytest.fixture
def browser(tmp_path):
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-dev-shm-usage", "--window-size=1200,1000",
                f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(arg)
    service = Service(executable_path=DRIVER, log_output=str(tmp_path / "chromedriver.log"))
    b = webdriver.Chrome(service=service, options=options)
    b.set_page_load_timeout(60)
    try:
        yield b
    finally:
        b.quit()


def _output(browser) -> dict:
    """The output <img> as the page shows it, with its pixels as PNG (through a canvas)."""
    return browser.execute_script("""
        const o = document.getElementById('output');
        const c = document.createElement('canvas');
        c.width = o.naturalWidth; c.height = o.naturalHeight;
        c.getContext('2d').drawImage(o, 0, 0);
        return {w: o.naturalWidth, h: o.naturalHeight, complete: o.complete,
                results: o.dataset.results, commit: o.dataset.commit,
                png: c.toDataURL('image/png').split(',')[1]};""")


@pytest.mark.slow
def test_page_uploads_draws_and_names_the_model(browser, real_export, info_file, tmp_path,
                                                start_server):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    server = start_server(real_export, model_info=info_file)
    wait = WebDriverWait(browser, 60)
    browser.get(server.url)
    line = browser.find_element(By.ID, "model-line")
    wait.until(lambda b: INFO["commit"] in line.text)
    assert "version 1" in line.text and "model@master" in line.text
    assert "0.2134" in browser.find_element(By.ID, "metrics").text
    assert "9a8b7c6d" in browser.find_element(By.ID, "provenance").text
    assert "unet_128" in browser.find_element(By.ID, "model-table").text

    # upload: the output has the input's size and the server's pixels
    upload = tmp_path / "facade.png"
    pixels = image(100, 150, seed=31)
    upload.write_bytes(png_bytes(pixels))
    browser.find_element(By.ID, "file").send_keys(str(upload))
    wait.until(lambda b: _output(b)["results"] == "1")
    out = _output(browser)
    assert (out["w"], out["h"], out["complete"]) == (150, 100, True)
    assert out["commit"] == INFO["commit"]
    assert f"commit {INFO['commit']}" in browser.find_element(By.ID, "made-by").text
    direct = decode_png(request(server.url + "predict", "POST", upload.read_bytes()).body)
    shown = decode_png(base64.b64decode(out["png"]))
    assert np.abs(shown.astype(int) - direct.astype(int)).max() <= 1

    # draw: a stroke on the canvas is translated at the model's size
    canvas = browser.find_element(By.ID, "canvas")
    ActionChains(browser).move_to_element_with_offset(canvas, -60, -40).click_and_hold() \
        .move_by_offset(90, 30).move_by_offset(20, 60).release().perform()
    wait.until(lambda b: _output(b)["results"] == "2")
    out = _output(browser)
    assert (out["w"], out["h"]) == (128, 128)
    inked = browser.execute_script("""
        const c = document.getElementById('canvas');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] < 128) n++;
        return [c.width, n];""")
    assert inked[0] == 128 and inked[1] > 50, f"the stroke left {inked[1]} dark pixels"
    stats = request(server.url + "v1/models/pix2pix/info").json()["stats"]
    assert stats["ok"] == 3  # the upload, the direct POST, the drawing

    shot = tmp_path / "page.png"
    assert browser.save_screenshot(str(shot))
    assert decode_png(shot.read_bytes()).shape[1] >= 800
