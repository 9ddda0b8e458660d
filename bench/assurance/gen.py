#!/usr/bin/env python3
"""Generates a large synthetic estate: an inventory CSV of N assets and a
Nessus v2 file with F findings spread over them (plus a Defender CSV).
Usage: gen.py OUTDIR [N_ASSETS] [N_FINDINGS]"""
import os, random, sys

out = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
f = int(sys.argv[3]) if len(sys.argv) > 3 else 1_000_000
os.makedirs(out, exist_ok=True)
rnd = random.Random(7)

def name(i):
    return ("SRV-%06d" if i % 10 == 0 else "WS-%06d") % i

def ip(i):
    return "10.%d.%d.%d" % (i >> 16 & 255, i >> 8 & 255, i & 255)

with open(os.path.join(out, "inventory.csv"), "w") as fh:
    fh.write("Hostname,IP Address,MAC Address,Operating System,Device Type,Owner,Last Seen,Status\n")
    for i in range(n):
        server = i % 10 == 0
        fh.write("%s,%s,02:00:%02x:%02x:%02x:%02x,%s,%s,user%d,2021-09-29,Active\n" % (
            name(i), ip(i), i >> 24 & 255, i >> 16 & 255, i >> 8 & 255, i & 255,
            "Windows Server 2019 Standard" if server else "Windows 10 Enterprise",
            "Server" if server else "Laptop", i % 500))

with open(os.path.join(out, "defender.csv"), "w") as fh:
    fh.write("Device Name,Device Id,OS Platform,Onboarding Status,AV mode,AV signature update time,Last device update\n")
    for i in range(n):
        fh.write("%s,%08x,%s,Onboarded,%d,2021-09-%02d,2021-09-30\n" % (
            name(i).lower(), i, "WindowsServer2019" if i % 10 == 0 else "Windows10",
            0 if i % 97 else 1, 29 if i % 53 else 15))

plugins = 2000
per_host = f // n
with open(os.path.join(out, "scan.nessus"), "w") as fh:
    fh.write('<?xml version="1.0" ?>\n<NessusClientData_v2><Report name="bench">\n')
    for i in range(n):
        fh.write('<ReportHost name="%s"><HostProperties><tag name="HOST_END_TIMESTAMP">1632564000</tag>'
                 '<tag name="host-ip">%s</tag><tag name="netbios-name">%s</tag>'
                 '<tag name="operating-system">Microsoft Windows</tag><tag name="Credentialed_Scan">true</tag></HostProperties>\n' % (ip(i), ip(i), name(i)))
        for p in rnd.sample(range(plugins), per_host):
            sev = 1 + p % 4
            fh.write('<ReportItem port="445" svc_name="cifs" protocol="tcp" severity="%d" pluginID="%d" pluginName="Plugin %d">'
                     '<cvss3_base_score>%.1f</cvss3_base_score><patch_publication_date>2021/%02d/01</patch_publication_date>'
                     '<risk_factor>%s</risk_factor><solution>Update.</solution><cve>CVE-2021-%d</cve></ReportItem>\n' % (
                         sev, 100000 + p, p, 2.5 * sev, 1 + p % 9, ["Low", "Medium", "High", "Critical"][sev - 1], p))
        fh.write('</ReportHost>\n')
    fh.write('</Report></NessusClientData_v2>\n')
