"""Manual check that `jupyter lab notebooks/` works: open a notebook in JupyterLab, Run All, count what rendered.

Not part of the test suite (it needs a running JupyterLab and the `playwright` package, which is not pinned here):

    .venv/bin/jupyter lab notebooks/ --no-browser --allow-root --port 8899 --IdentityProvider.token=wbtoken &
    pip install playwright   # in any venv; uses Debian's /usr/bin/chromium, downloads no browser
    python scripts/check_jupyterlab.py http://127.0.0.1:8899 tuning.ipynb /tmp/lab.png

Prints the number of plotly figures, widget views and sliders rendered and of error outputs; writes two
screenshots (the page after Run All, and the last widget output).
"""

import sys
import time

from playwright.sync_api import sync_playwright


def main(url: str, notebook: str, shot: str) -> None:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{url}/lab/tree/{notebook}?token=wbtoken")
        page.wait_for_selector(".jp-Notebook", timeout=60000)
        time.sleep(5)
        page.click("text=Run", timeout=10000)
        page.click("text=Run All Cells", timeout=10000)
        time.sleep(40)  # the notebooks run in seconds; generous for a loaded machine
        page.screenshot(path=shot)
        print("plotly figures:", page.locator(".js-plotly-plot").count())
        print("widget views:", page.locator(".jupyter-widgets").count())
        print("sliders:", page.locator(".widget-slider").count())
        errors = page.locator(".jp-RenderedText[data-mime-type='application/vnd.jupyter.stderr']")
        print("error outputs:", errors.count())
        if page.locator(".jupyter-widgets").count():
            page.locator(".jupyter-widgets").last.scroll_into_view_if_needed()
            time.sleep(2)
            page.screenshot(path=shot.replace(".png", "-widgets.png"))
        browser.close()


if __name__ == "__main__":
    main(*sys.argv[1:4])
