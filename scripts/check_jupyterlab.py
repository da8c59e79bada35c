"""Check that the tuning notebook's replay widgets work in a real JupyterLab: open it in headless Chromium, Run All,
move the "threshold P" slider, and see the replayed figure change. Prints what it saw; exit 1 if the figure did
not change. Not part of the test suite (it needs a running JupyterLab and the `playwright` package, which is not
pinned here; playwright drives Debian's /usr/bin/chromium and downloads no browser):

    .venv/bin/jupyter lab notebooks/ --no-browser --allow-root --port 8899 --IdentityProvider.token=wbtoken &
    python -m venv /tmp/pw && /tmp/pw/bin/pip install playwright
    /tmp/pw/bin/python scripts/check_jupyterlab.py http://127.0.0.1:8899 tuning.ipynb /tmp/lab.png
"""

import sys
import time

from playwright.sync_api import sync_playwright

FIGURE_Y = """() => { const plots = [...document.querySelectorAll('.jupyter-widgets .js-plotly-plot')];
  return plots.length ? JSON.stringify(plots[plots.length - 1].data.map(t => t.y)) : null; }"""


def main(url: str, notebook: str, shot: str) -> int:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{url}/lab/tree/{notebook}?token=wbtoken")
        page.wait_for_selector(".jp-Notebook", timeout=60000)
        time.sleep(5)
        page.click("text=Run", timeout=10000)
        page.click("text=Run All Cells", timeout=10000)
        time.sleep(60)  # the notebook runs in seconds; generous for a loaded machine
        page.screenshot(path=shot)
        errors = page.locator(".jp-RenderedText[data-mime-type='application/vnd.jupyter.stderr']")
        print("plotly figures:", page.locator(".js-plotly-plot").count(), "| sliders:",
              page.locator(".widget-slider").count(), "| error outputs:", errors.count())
        before = page.evaluate(FIGURE_Y)
        slider = page.locator(".widget-slider", has_text="threshold P").locator(".noUi-handle").first
        slider.scroll_into_view_if_needed()
        slider.click()
        for _ in range(20):  # 20 × 0.01: threshold P from 0.40 to 0.20
            page.keyboard.press("ArrowLeft")
        time.sleep(5)
        after = page.evaluate(FIGURE_Y)
        page.screenshot(path=shot.replace(".png", "-widgets.png"))
        browser.close()
    changed = before is not None and after is not None and before != after
    print(f"replayed figure before: {before}\nafter moving 'threshold P': {after}\nchanged: {changed}")
    return 0 if changed else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
