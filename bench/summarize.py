#!/usr/bin/env python3
"""Turns the output of bench/run.sh into a Markdown results table with the issue's
targets. Usage: summarize.py RESULTS_FILE"""
import re
import sys

text = open(sys.argv[1], encoding="utf-8").read()


# The full-size end-to-end run (and what follows it) is the last section of its kind;
# the small run before it only gives the rate to compare with.
full = text[text.rfind("## end to end (local"):] if "## end to end (local" in text else text


def find(pattern, within=None):
    m = re.search(pattern, full if within is None else within)
    return m.groups() if m else None


def num(s):
    return float(s.replace(",", ""))


rows = []
fold = find(r"fold: ([\d.]+) s, (\d+) events/s per core", text)
fold_cfg = find(r"fold_bench: (\d+) events, (\d+) customers", text)
if fold and fold_cfg:
    rate = num(fold[1])
    rows.append(("pure fold, one thread", f"{fold_cfg[1]} customers, {fold_cfg[0]} events",
                 f"{rate:,.0f} events/s per core", "≥ 1,000,000",
                 "met" if rate >= 1e6 else f"{1e6 / rate:.1f}× short"))
raw = find(r"raw consume: (\d+) records \(([\d.]+) MB\) in ([\d.]+) s: (\d+) records/s")
# The full-size run is the last end-to-end run; a small one (50,000 customers) comes first.
e2e_all = re.findall(r"end-to-end projection.*: (\d+) records in ([\d.]+) s: (\d+) events/s", text)
e2e = e2e_all[-1] if e2e_all else None
small = e2e_all[0] if len(e2e_all) > 1 else None
customers_all = re.findall(r"CUSTOMERS=(\d+) bench/e2e_bench.sh", text)
customers = (customers_all[-1],) if customers_all else None
if raw:
    rows.append(("raw consume ceiling", f"{raw[0]} records, {raw[1]} MB",
                 f"{num(raw[3]):,.0f} records/s", "—", "—"))
if e2e:
    rate = num(e2e[2])
    ratio = f"; {100 * rate / num(raw[3]):.2f}% of the ceiling" if raw else ""
    gap = "met" if rate >= 3e5 else f"{3e5 / rate:.1f}× short"
    rows.append(("end to end = rebuild from offset 0",
                 f"{customers[0] if customers else '?'} customers, {e2e[0]} records",
                 f"{rate:,.0f} events/s ({e2e[1]} s){ratio}", "≥ 300,000", gap))
    if small:
        share = rate / num(small[2])
        rows.append(("end to end, large vs small",
                     f"{customers_all[0]} customers ({small[0]} records) vs {customers[0]}",
                     f"{num(small[2]):,.0f} vs {rate:,.0f} events/s: {100 * share:.0f}%",
                     "≥ 70% of the rate at 50,000", "met" if share >= 0.7 else f"{100 * share:.0f}%"))
disk = re.findall(r"view store on disk after catching up: ([\d.]+)([MG])", full)
if disk:
    size, unit = disk[-1]
    gb = num(size) * (1 if unit == "G" else 1 / 1024)
    rows.append(("view store on disk", f"{customers[0] if customers else '?'} customers, "
                 "right after catching up (WAL and unmerged files included)",
                 f"{size}{unit}", "≤ 1 GB", "met" if gb <= 1.0 else f"{gb:.2f} GB"))
settled = re.findall(r"view store on disk once compactions settle: ([\d.]+)([MG]) \((\d+) bytes, after (\d+) s more\)", full)
if settled:
    size, unit, nbytes, waited = settled[-1]
    gb = num(nbytes) / 1e9
    rows.append(("view store on disk, settled", f"{customers[0] if customers else '?'} customers, "
                 f"once compactions settle ({waited} s after the queries)",
                 f"{size}{unit} ({gb:.2f} GB)", "≤ 1 GB", "met" if gb <= 1.0 else f"{gb:.2f} GB"))
mem = find(r"peak resident memory of lifecycled: (\d+) MiB for (\d+) customers \(([\d.]+) GiB per")
if mem:
    per = num(mem[2])
    rows.append(("peak resident memory", f"{mem[1]} customers", f"{mem[0]} MiB ({per:.2f} GiB per 1,000,000)",
                 "≤ 1 GiB per 1,000,000", "met" if per <= 1 else f"{per:.2f}× the target"))
GET = r"GetCustomer: (\d+) calls in ([\d.]+) s at concurrency (\d+)(?: over \d+ connections?)?: (\d+) QPS, p50 ([\d.]+) ms, p99 ([\d.]+) ms"


def get_row(label, get):
    qps, p99 = num(get[3]), num(get[5])
    gap = []
    if qps < 30000:
        gap.append(f"{30000 / qps:.1f}× short on QPS")
    if p99 > 2:
        gap.append(f"p99 {p99 / 2:.1f}× over")
    return (label, f"concurrency {get[2]}, {get[1]} s",
            f"{qps:,.0f} QPS, p50 {get[4]} ms, p99 {get[5]} ms", "≥ 30,000 QPS, p99 ≤ 2 ms",
            "; ".join(gap) or "met")


get = find(GET)
if get:
    rows.append(get_row("GetCustomer", get))
# The same queries once the store has settled (after "queries again").
if "queries again" in full:
    get2 = find(GET, full[full.find("queries again"):])
    if get2:
        rows.append(get_row("GetCustomer, settled store", get2))
for q in re.findall(r"(ListCustomers|GetSummary) \(([^)]*)\): (\d+) sequential calls, "
                   r"p50 ([\d.]+) ms, p99 ([\d.]+) ms", full[:full.find("queries again")]
                   if "queries again" in full else full):
    rows.append((q[0], f"{q[1]}, {q[2]} calls", f"p50 {q[3]} ms, p99 {q[4]} ms", "—", "—"))
alert = find(r"alert latency: p50 ([\d.]+) ms, p90 ([\d.]+) ms, p99 ([\d.]+) ms, max ([\d.]+) ms")
alert_cfg = find(r"alert_latency: (\d+) events/s for (\d+) s")
got = find(r"alerts received (\d+) of (\d+)")
if alert:
    p99 = num(alert[2])
    rows.append(("alert latency, produce → subscriber",
                 f"{alert_cfg[0]} events/s for {alert_cfg[1]} s" if alert_cfg else "",
                 f"p50 {alert[0]} ms, p90 {alert[1]} ms, p99 {alert[2]} ms, max {alert[3]} ms"
                 + (f"; {got[0]} of {got[1]} alerts" if got else ""),
                 "p99 ≤ 50 ms", "met" if p99 <= 50 else f"p99 {p99 / 50:.1f}× over"))

probes = re.findall(r"machine probe \(one thread, \d+ rounds\): a dependent load over (\d+) MiB "
                    r"([\d.]+) ns \(median [\d.]+\), a multiply-xorshift step ([\d.]+) ns", text)
if probes:
    rows.append(("machine probe (bench/machine_probe)",
                 "start" + (" / end" if len(probes) > 1 else ""),
                 " / ".join(f"{p[1]} ns a load over {p[0]} MiB, {p[2]} ns a step" for p in probes),
                 "—", "—"))

print("| benchmark | settings | result | target | gap |")
print("|---|---|---|---|---|")
for r in rows:
    print("| " + " | ".join(r) + " |")
