"""The fleet view: every node publishes its run reports to git; people read them there.

A node pushes one signed commit per report to `refs/reports/<node>` of a reports
repository (publish.py, push.py, chain.py); `reconciler fleet` and its web page read
every node's last report from there (read.py, summary.py, web.py).
"""
