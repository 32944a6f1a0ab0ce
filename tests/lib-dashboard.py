"""lib-dashboard.py: loads `kubectl slipway dashboard` in headless Chromium
(Debian's chromium and chromium-driver, driven by Selenium) and checks the
rendered DOM, for tests/t8400-dashboard.sh. Each check polls the page for its
condition until a deadline; it exits 0 when it holds, 1 with what the page
showed when it does not.

usage: lib-dashboard.py URL CHECK ARGS...
  remotes NS/NAME=URL...        each Remote is listed with its clone URL
  live NS/REMOTE DIR            a new run of REMOTE appears while the page is
                                open: DIR/running gets its name once the page
                                shows it Running, then it must turn Succeeded
                                (DIR/released appears first) with no reload
  failure NS/REMOTE/RUN REASON MESSAGE
                                the run's page highlights the failure
  bars RUN STAGE,STAGE...       the timeline row of RUN has one bar per stage
  forbidden KIND                the page says KIND is forbidden, lists no run
  screenshot FILE WIDTH HEIGHT HASH SELECTOR
                                once SELECTOR is rendered at #HASH
"""
import os
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

DEADLINE = 60


def browser(width=1280, height=800):
    o = webdriver.ChromeOptions()
    o.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--no-first-run", "--hide-scrollbars", f"--window-size={width},{height}"):
        o.add_argument(a)
    d = webdriver.Chrome(service=Service(os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")),
                         options=o)
    d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                      {"width": width, "height": height, "deviceScaleFactor": 1,
                       "mobile": width < 600})
    return d


def wait_for(d, what, cond, deadline=DEADLINE):
    end = time.time() + deadline
    while True:
        try:
            v = cond()
            if v:
                return v
        except Exception:  # the page re-renders under us: look again
            pass
        if time.time() > end:
            text = d.find_element(By.TAG_NAME, "body").text
            sys.exit(f"timed out waiting for {what}; the page shows:\n{text[:3000]}")
        time.sleep(0.1)


def texts(d, css):
    return [e.text for e in d.find_elements(By.CSS_SELECTOR, css)]


def run_results(d, remote):
    rows = d.find_elements(By.CSS_SELECTOR, f'.timeline[data-remote="{remote}"] .run')
    return {r.get_attribute("data-name"): r.get_attribute("data-result") for r in rows}


def main():
    url, check, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    size = (int(args[1]), int(args[2])) if check == "screenshot" else (1280, 800)
    d = browser(*size)
    try:
        if check == "remotes":
            d.get(url)
            for a in args:
                name, want = a.split("=", 1)
                css = f'.remote[data-name="{name}"] .url'
                wait_for(d, f"{name} with URL {want}", lambda: texts(d, css) == [want])
        elif check == "live":
            remote, dir_ = args
            d.get(url)
            wait_for(d, "the timeline of " + remote,
                     lambda: d.find_elements(By.CSS_SELECTOR, f'.timeline[data-remote="{remote}"]'))
            before = set(run_results(d, remote))
            d.execute_script("window.loadedOnce = 'yes'")
            open(os.path.join(dir_, "page-ready"), "w").close()
            new = wait_for(d, "a new run shown Running",
                           lambda: [n for n, r in run_results(d, remote).items()
                                    if n not in before and r == "Running"])
            with open(os.path.join(dir_, "running"), "w") as f:
                f.write(new[0] + "\n")
            wait_for(d, new[0] + " Succeeded",
                     lambda: run_results(d, remote).get(new[0]) == "Succeeded")
            if d.execute_script("return window.loadedOnce") != "yes":
                sys.exit("the page was reloaded")
            if not os.path.exists(os.path.join(dir_, "released")):
                sys.exit("Succeeded before the pipeline was released")
        elif check == "failure":
            path, reason, message = args
            d.get(url + "#/" + path)
            wait_for(d, "the failure reason " + reason,
                     lambda: texts(d, ".failure .reason") == [reason])
            got = texts(d, ".failure .message")
            if not got or message not in got[0]:
                sys.exit(f"failure message {got!r} lacks {message!r}")
        elif check == "bars":
            run, stages = args[0], args[1].split(",")
            d.get(url)
            css = f'.run[data-name="{run}"] .bar'
            wait_for(d, f"{len(stages)} bars {stages}", lambda: texts(d, css) == stages)
        elif check == "forbidden":
            kind = args[0]
            d.get(url)
            css = f'.alert.forbidden[data-kind="{kind}"]'
            t = wait_for(d, kind + " forbidden", lambda: texts(d, css))
            if "Forbidden" not in t[0] or "forbidden" not in t[0].split("Forbidden", 1)[1]:
                sys.exit(f"the message does not say forbidden: {t[0]!r}")
            if d.find_elements(By.CSS_SELECTOR, ".run"):
                sys.exit("runs are listed although listing them is forbidden")
            print(t[0])
        elif check == "screenshot":
            file, hash_, css = args[0], args[3], args[4]
            d.get(url + hash_)
            wait_for(d, css + " to render", lambda: d.find_elements(By.CSS_SELECTOR, css))
            # rendering happens in an animation frame: wait for the next two
            d.execute_async_script("const done = arguments[arguments.length - 1];"
                                   "requestAnimationFrame(() => requestAnimationFrame(done));")
            d.save_screenshot(file)
        else:
            sys.exit("unknown check " + check)
    finally:
        d.quit()


main()
