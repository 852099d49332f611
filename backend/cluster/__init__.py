"""The production topology as processes on one machine (`dermalink cluster up|down|status`).

`topology` starts and stops the parts; `load` is the load generator the fault test and
`dermalink bench cluster` share.
"""
