#!/usr/bin/env python3
"""Of the customers with a CHURNED alert, how many had a CHURN_RISK alert before it.

Usage: lifecyclectl alerts --json > alerts.jsonl; python3 bench/churn_warnings.py alerts.jsonl
"""
import json,sys,collections
al=collections.defaultdict(list)
for l in open(sys.argv[1]):
    a=json.loads(l); al[a['customer_id']].append((a['at'],a['kind']))
churners=0; warned=0
for c,v in al.items():
    v.sort()
    first_ch=next((t for t,k in v if k=='ALERT_KIND_CHURNED'),None)
    if first_ch is None: continue
    churners+=1
    if any(k=='ALERT_KIND_CHURN_RISK' and t<first_ch for t,k in v): warned+=1
print(f"customers with a CHURNED alert: {churners}; a CHURN_RISK alert before it: {warned} ({100*warned/max(churners,1):.1f}%)")
