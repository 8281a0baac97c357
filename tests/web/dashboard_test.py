#!/usr/bin/python3
"""The dashboard in a real browser (headless Chromium through chromedriver, WebDriver).

Starts lifecycled (its own topic, group, data dir, ports 0) against the test broker,
publishes the scenario data (examples/demo-events.jsonl), waits until it is applied,
then in the browser: the overview's numbers equal GetSummary's (asked over gRPC with
lifecyclectl); a click on a customer in the list opens a page whose stage equals
GetCustomer's; the language switch shows the seeds' terms; an alert raised during the
test appears in the live feed without a reload. Screenshots go to --screenshots.

  dashboard_test.py --lifecycled BIN --lifecyclectl BIN --events FILE --screenshots DIR
"""
import argparse
import datetime
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lifecycled", required=True)
    ap.add_argument("--lifecyclectl", required=True)
    ap.add_argument("--events", required=True)
    ap.add_argument("--screenshots", required=True)
    a = ap.parse_args()
    brokers = os.environ.get("LIFECYCLE_TEST_BROKERS", "127.0.0.1:9092")
    os.makedirs(a.screenshots, exist_ok=True)
    work = tempfile.mkdtemp(prefix="lifecycle-web-test-")
    topic = f"web-{os.getpid()}-{random.randrange(10**6)}"
    listen_file = os.path.join(work, "listen")
    log = open(os.path.join(work, "lifecycled.log"), "w")
    daemon = subprocess.Popen(
        [a.lifecycled, "--brokers", brokers, "--events-topic", topic, "--alerts-topic", topic + ".alerts",
         "--group", topic, "--data-dir", os.path.join(work, "data"), "--grpc-listen", "127.0.0.1:0",
         "--metrics-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--listen-file", listen_file,
         "--partitions", "3", "--tick-interval-s", "0", "--commit-interval-ms", "20"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)  # its own process group
    driver = None
    try:
        for _ in range(600):
            if os.path.exists(listen_file) and len(open(listen_file).read().splitlines()) >= 3:
                break
            if daemon.poll() is not None:
                sys.exit("lifecycled exited: " + open(log.name).read()[-3000:])
            time.sleep(0.1)
        lines = open(listen_file).read().splitlines()
        grpc_addr, http_addr = lines[0], lines[2].split(" ", 1)[1]
        url = f"http://{http_addr}/"

        def ctl(*args):
            out = subprocess.run([a.lifecyclectl, "--brokers", brokers, "--topic", topic, "--server", grpc_addr, *args],
                                 capture_output=True, text=True, timeout=60)
            if out.returncode != 0:
                sys.exit(f"lifecyclectl {' '.join(args)} failed: {out.stderr}")
            return out.stdout

        ctl("publish", a.events)
        records = sum(1 for line in open(a.events) if line.strip())
        deadline = time.time() + 120
        while time.time() < deadline:
            st = json.loads(ctl("status", "--json"))
            stored = sum(int(p.get("stored_offset", -1)) + 1 for p in st.get("partitions", []))
            if stored >= records:
                break
            time.sleep(0.3)
        else:
            sys.exit(f"lifecycled applied {stored} of {records} records")

        opts = Options()
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1800",
                    "--disable-dev-shm-usage", "--lang=en-US"):
            opts.add_argument(arg)
        opts.binary_location = "/usr/bin/chromium"
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
        # The single-page app re-renders a view when its data or the language changes, so
        # an element found a moment ago can be gone: waits look it up again.
        wait = WebDriverWait(driver, 30, ignored_exceptions=[StaleElementReferenceException])

        # 1. The overview's numbers are GetSummary's.
        driver.get(url + "#/")
        wait.until(lambda d: d.find_element(By.ID, "view").get_attribute("data-loaded") == "/")
        time.sleep(0.5)  # charts draw after the data
        summary = json.loads(ctl("summary", "--by", "stage", "--json"))
        want = {c["key"]: int(c["customers"]) for c in summary["dimensions"][0]["counts"]}
        shown = {}
        for row in driver.find_elements(By.CSS_SELECTOR, "#stage-counts tr"):
            shown[row.get_attribute("data-key")] = int(row.find_element(By.CSS_SELECTOR, "td.n").text)
        for key, n in shown.items():
            assert n == want.get(key, 0), f"stage {key}: the page shows {n}, GetSummary says {want.get(key, 0)}"
        total = json.loads(ctl("summary", "--json"))["customers"]
        assert int(driver.find_element(By.ID, "kpi-customers").text) == int(total), "customer total"
        charts = driver.find_elements(By.CSS_SELECTOR, ".chart canvas")
        assert len(charts) >= 10, f"{len(charts)} charts drawn"
        driver.save_screenshot(os.path.join(a.screenshots, "overview.png"))
        print(f"overview: {len(shown)} stage counts and the total ({total}) equal GetSummary's; {len(charts)} charts")

        # 2. A click in the customer list opens the customer; the stage is GetCustomer's.
        driver.get(url + "#/customers")
        wait.until(lambda d: d.find_element(By.ID, "view").get_attribute("data-loaded") == "/customers")
        rows = driver.find_elements(By.CSS_SELECTOR, "table.customers tbody tr.link")
        assert rows, "no customers listed"
        driver.save_screenshot(os.path.join(a.screenshots, "customers.png"))
        customer_id = rows[0].get_attribute("data-id")
        rows[0].click()
        wait.until(lambda d: d.find_element(By.ID, "view").get_attribute("data-loaded").startswith("/customer/"))
        stage = driver.find_element(By.ID, "customer-stage").get_attribute("data-stage")
        got = json.loads(ctl("get", customer_id, "--json"))["customer"]["stage"]
        assert "STAGE_" + stage == got, f"{customer_id}: page says {stage}, GetCustomer says {got}"
        time.sleep(0.5)
        driver.save_screenshot(os.path.join(a.screenshots, "customer.png"))
        print(f"customer page: {customer_id} is {stage}, as GetCustomer says")

        # 3. Chinese: the seeds' terms.
        driver.find_element(By.ID, "lang").click()
        wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "header nav a").text == "总览")
        driver.get(url + "#/")
        wait.until(lambda d: d.find_element(By.ID, "view").get_attribute("data-loaded") == "/")
        wait.until(lambda d: "基盘客户分析" in d.find_element(By.TAG_NAME, "h1").text)
        wait.until(lambda d: "战败客户" in d.find_element(By.ID, "view").text)
        time.sleep(0.5)
        driver.save_screenshot(os.path.join(a.screenshots, "overview-zh.png"))
        driver.find_element(By.ID, "lang").click()
        print("language: zh-CN shows 总览, 基盘客户分析, 战败客户")

        # 4. The live feed: an alert raised now appears without a reload.
        driver.get(url + "#/alerts")
        wait.until(lambda d: d.find_element(By.ID, "view").get_attribute("data-loaded") == "/alerts")
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#feed li")) > 0)  # the backlog
        fresh = f"web-live-{random.randrange(10**9)}"
        events = os.path.join(work, "live.jsonl")
        # Now: an alert about something long past is late and not streamed as news.
        now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
        stamp = lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ")
        with open(events, "w") as f:
            f.write(json.dumps({"eventId": fresh + "-lead", "customerId": fresh,
                                "occurredAt": stamp(now - datetime.timedelta(seconds=2)),
                                "leadCaptured": {"leadId": "L-" + fresh}}) + "\n")
            f.write(json.dumps({"eventId": fresh + "-lost", "customerId": fresh, "occurredAt": stamp(now),
                                "dealLost": {"leadId": "L-" + fresh, "reason": "DEAL_LOST_REASON_PRICE"}}) + "\n")
        ctl("publish", events)
        WebDriverWait(driver, 60, ignored_exceptions=[StaleElementReferenceException]).until(
            lambda d: fresh in d.find_element(By.ID, "feed").text)
        driver.save_screenshot(os.path.join(a.screenshots, "alerts.png"))
        print(f"live feed: the DEAL_LOST alert of {fresh} appeared without a reload")
        print("dashboard test: PASSED")
    finally:
        if driver:
            driver.quit()
        os.killpg(daemon.pid, signal.SIGTERM)
        try:
            daemon.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait()
        log.close()
        subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
