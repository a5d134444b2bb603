"""pyinfra inventories, run as files (``pyinfra inventories/lab.py ...``), never imported.

An installed archfleet carries them as ``archfleet/inventories`` (a link in the checkout).
"""
