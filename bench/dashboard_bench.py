#!/usr/bin/python3
"""How fast the dashboard's pages load in headless Chromium, against a running lifecycled.

  dashboard_bench.py --url http://127.0.0.1:8151/ [--runs 5] [--customer ID]

For each page: a cold load (a new tab: HTML, ECharts, the API calls, the charts
drawn), then --runs navigations within the page (the API calls and the drawing), timed
from the navigation until the page marks itself loaded (#view[data-loaded]) and, where
it has charts, every chart has drawn. Prints each page's median and worst, and the
JSON API's own times for the same requests (curl, server side only).
"""
import argparse
import json
import statistics
import subprocess
import time
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--customer", default="")
    a = ap.parse_args()
    base = a.url.rstrip("/") + "/"
    customer = a.customer
    if not customer:
        page = json.load(urllib.request.urlopen(base + "api/v1/customers?stage=STAGE_AT_RISK&pageSize=1"))
        customer = page["customers"][0]["customerId"]
    total = json.load(urllib.request.urlopen(base + "api/v1/summary?groupBy=DIMENSION_STAGE"))["customers"]
    pages = [("overview", "/", 10), ("lost deals", "/lost", 1), ("customer list", "/customers", 0),
             ("customer list, at risk", "/customers?stage=STAGE_AT_RISK", 0),
             ("customer page", "/customer/" + customer, 3)]
    opts = Options()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1800", "--disable-dev-shm-usage"):
        opts.add_argument(arg)
    opts.binary_location = "/usr/bin/chromium"
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2; nproc"],
                         capture_output=True, text=True).stdout.split("\n")
    print(f"dashboard at {base}: {int(total):,} customers; {a.runs} runs per page; "
          f"machine:{cpu[0]}, {cpu[1]} cores; headless Chromium")

    def wait_loaded(route, charts, start):
        while True:
            done = driver.execute_script(
                "const v=document.getElementById('view');"
                "return v && v.dataset.loaded===arguments[0] && document.querySelectorAll('.chart canvas').length>=arguments[1];",
                route.split("?")[0], charts)
            if done:
                return time.perf_counter() - start
            if time.perf_counter() - start > 30:
                raise TimeoutError(route)
            time.sleep(0.005)

    print(f"{'page':26} {'cold load':>10} {'median':>9} {'worst':>9}  {'API (curl)':>10}")
    try:
        for name, route, charts in pages:
            driver.get("about:blank")
            start = time.perf_counter()
            driver.get(base + "#" + route)
            cold = wait_loaded(route, charts, start)
            times = []
            for _ in range(a.runs):
                # Away to the alerts page (no API call to wait for), then back.
                driver.execute_script("location.hash='#/alerts'")
                wait_loaded("/alerts", 0, time.perf_counter())
                driver.execute_script("document.getElementById('view').dataset.loaded=''")
                start = time.perf_counter()
                driver.execute_script("location.hash=arguments[0]", "#" + route)
                times.append(wait_loaded(route, charts, start))
            api = {"/": "summary", "/lost": "summary?groupBy=DIMENSION_LOST_DEAL_REASON",
                   "/customers": "customers?pageSize=50"}.get(route.split("?")[0], "")
            if route.startswith("/customers?"):
                api = "customers?pageSize=50&" + route.split("?")[1]
            if route.startswith("/customer/"):
                api = "customers/" + customer
            curl = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{time_total}", base + "api/v1/" + api],
                                  capture_output=True, text=True).stdout
            print(f"{name:26} {cold * 1000:8.0f}ms {statistics.median(times) * 1000:7.0f}ms "
                  f"{max(times) * 1000:7.0f}ms  {float(curl) * 1000:8.1f}ms")
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
