# Signs messages with Debian's dkimpy (python3-dkim) for the differential
# test: reads a JSON list of jobs on stdin, writes the list of
# DKIM-Signature fields (base64) on stdout.
import base64
import json
import sys

import dkim

out = []
for job in json.load(sys.stdin):
    headers = [h.encode() for h in job["headers"]] if job["headers"] else None
    sig = dkim.sign(
        base64.b64decode(job["msg"]),
        job["sel"].encode(),
        job["dom"].encode(),
        job["key"].encode(),
        canonicalize=(job["hc"].encode(), job["bc"].encode()),
        signature_algorithm=job["alg"].encode(),
        include_headers=headers,
        length=job["length"],
    )
    out.append(base64.b64encode(sig).decode())
json.dump(out, sys.stdout)
